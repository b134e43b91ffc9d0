import ArgumentParser
import Crypto
import Foundation
import RelaySignIn
import RelayStore
import RelayWire

struct CompanyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "company",
        abstract: "Add, list, remove companies, rotate a company's admin token, set its policy, or place and release legal holds.",
        subcommands: [Add.self, List.self, Remove.self, Rotate.self, Policy.self, Hold.self, Release.self, Holds.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a company; prints its id and its admin token for the admin API (shown once).")
        @OptionGroup var options: DataOptions
        @Argument(help: "The company's name, e.g. \"ACME Korea\".") var name: String

        func run() throws {
            let (company, token) = try adminAction { try options.openStore().addCompany(name: name, actor: "cli") }
            emit(
                json: options.json, ["id": company.id, "name": company.name, "token": token],
                text: """
                    Company "\(company.name)" added.
                      id:          \(company.id)
                      admin token: \(token)
                    The token is shown only this once: store it in a password manager. It is for the admin API only.
                    Next: relay-server engineer add\(options.repeated) --company \(company.id) LOGIN --public-key KEY
                    """)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List companies.")
        @OptionGroup var options: DataOptions

        func run() throws {
            let (companies, holds) = try adminAction {
                let store = try options.openStore()
                return (try store.companies(), Set(try store.legalHolds().map(\.companyID)))
            }
            let rows: [[String: any Sendable]] = companies.map {
                ["id": $0.id, "name": $0.name, "created_at": iso8601($0.createdAt), "legal_hold": holds.contains($0.id)]
            }
            emit(
                json: options.json, ["companies": rows],
                text: companies.isEmpty
                    ? "No companies yet. Add one: relay-server company add\(options.repeated) NAME"
                    : companies.map { "\($0.id)  \($0.name)\(holds.contains($0.id) ? "  (legal hold)" : "")" }.joined(separator: "\n"))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a company with its engineers and enrolled hosts.")
        @OptionGroup var options: DataOptions
        @Argument(help: "The company id.") var id: String

        func run() throws {
            try adminAction { try options.openStore().removeCompany(id: id, actor: "cli") }
            emit(json: options.json, ["id": id, "removed": true], text: "Company \(id) removed, with its engineers and hosts.")
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace a company's admin token (for the admin API); the old one stops working.")
        @OptionGroup var options: DataOptions
        @Argument(help: "The company id.") var id: String

        func run() throws {
            let token = try adminAction { try options.openStore().rotateCompanyToken(id: id, actor: "cli") }
            emit(json: options.json, ["id": id, "token": token], text: "New admin token for \(id): \(token)\nThe token is shown only this once.")
        }
    }
}

extension CompanyCommand {
    struct Policy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or set a company's policy.",
            discussion: """
                --confirm-security-code on: in attended sessions, the company's engineers must type \
                the six-digit security code the customer reads from their screen before anything \
                they type or click is sent; a different code ends the session (someone is in \
                between, docs/SECURITY.md §6.2). It applies to sessions that start afterwards.
                """
        )
        enum Switch: String, ExpressibleByArgument, CaseIterable {
            case on, off
        }

        @OptionGroup var options: DataOptions
        @Argument(help: "The company id.") var id: String
        @Option(help: "Engineers must confirm the security code before their input is sent (attended sessions).")
        var confirmSecurityCode: Switch?

        func run() throws {
            let company = try adminAction {
                let store = try options.openStore()
                if let confirmSecurityCode { try store.setConfirmSecurityCode(companyID: id, required: confirmSecurityCode == .on, actor: "cli") }
                return try store.company(id: id)
            }
            emit(
                json: options.json, ["id": company.id, "confirm_security_code": company.confirmSecurityCode],
                text: """
                    Company \(company.id) (\(company.name)):
                      confirm security code: \(company.confirmSecurityCode ? "on (engineers type the customer's code before their input is sent)" : "off")
                    """)
        }
    }

    struct Hold: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Place a company under legal hold: its records are kept past retention until released."
        )
        @OptionGroup var options: DataOptions
        @Argument(help: "The company id.") var id: String
        @Option(help: "Why, e.g. the case or ticket number (kept with the hold, not in the audit log).") var reason: String

        func run() throws {
            let hold = try adminAction { try options.openStore().placeHold(companyID: id, reason: reason, actor: "cli") }
            emit(
                json: options.json, ["id": id, "legal_hold": true, "held_at": iso8601(hold.heldAt)],
                text: """
                    Company \(id) is under legal hold: the purge keeps its usage history and access log past retention.
                    Lift it with: relay-server company release\(options.repeated) \(id)
                    """)
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lift a company's legal hold; its records past retention go at the next purge."
        )
        @OptionGroup var options: DataOptions
        @Argument(help: "The company id.") var id: String

        func run() throws {
            try adminAction { try options.openStore().releaseHold(companyID: id, actor: "cli") }
            emit(
                json: options.json, ["id": id, "legal_hold": false],
                text: """
                    Company \(id) is no longer under legal hold. Records past retention are purged within the hour \
                    (or now: relay-server usage purge\(options.repeated)).
                    """)
        }
    }

    struct Holds: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List legal holds.")
        @OptionGroup var options: DataOptions

        func run() throws {
            let holds = try adminAction { try options.openStore().legalHolds() }
            let rows: [[String: any Sendable]] = holds.map {
                ["id": $0.companyID, "reason": $0.reason, "held_at": iso8601($0.heldAt), "held_by": $0.heldBy]
            }
            emit(
                json: options.json, ["holds": rows],
                text: holds.isEmpty
                    ? "No company is under legal hold."
                    : holds.map { "\($0.companyID)  since \(iso8601($0.heldAt))  \($0.reason)" }.joined(separator: "\n"))
        }
    }
}

struct EngineerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engineer",
        abstract: "Add, list, remove support engineers, set the key an engineer logs in with, or manage their web sign-in.",
        discussion: """
            Engineers log in with an Ed25519 key pair: `relay-agent keygen` makes it on the \
            engineer's machine and `relay-agent keygen --show` prints the public key, which is \
            all the relay stores, so neither a copy of its database nor a proxy in front of it \
            holds anything that logs in. Engineers added before keys log in with a token until \
            they are given a key with `set-key` (`list` shows which; docs/OPERATIONS.md \
            "Moving accounts to keys").
            """,
        subcommands: [Add.self, List.self, Remove.self, SetKey.self, SetRole.self, SignInLinkCommand.self, ResetTOTP.self, Rotate.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an engineer to a company; prints their one-time link to sign in to the browser console.",
            discussion: """
                The link sets the engineer's password and two-factor app in the browser (it works \
                once, for 24 hours). With --public-key the engineer can also use `relay-agent view`; \
                without, they work in the browser until `engineer set-key` gives them a key.
                """)
        @OptionGroup var options: DataOptions
        @Option(help: "The company id (see `relay-server company list`).") var company: String
        @Option(
            help: PublicKeyArgument.help("The public key of the engineer's relay-agent, which `relay-agent keygen --show` prints on their machine (optional)"),
            transform: PublicKeyArgument.parse)
        var publicKey: Curve25519.Signing.PublicKey?
        @Option(
            help: ArgumentHelp(
                "What they may do in the admin console: engineer (their own sessions), manager, admin (their company), or operator (the relay's counts, no company's content).",
                valueName: "ROLE"),
            transform: { try AccountRole(parsing: $0) })
        var role: AccountRole = .engineer
        @Argument(help: "The engineer's login, e.g. kim.minji.") var login: String
        @OptionGroup var web: WebAddressOptions

        func run() throws {
            let configuration = try options.configuration()
            let baseURL = try web.baseURL(configuration)
            let (engineer, link) = try adminAction {
                let store = try options.openStore(configuration)
                var engineer = try store.addEngineer(companyID: company, login: login, publicKey: publicKey, actor: "cli")
                if role != .engineer { engineer = try store.setRole(engineerID: engineer.id, role: role, actor: "cli") }
                return (engineer, try IssuedSignInLink.issue(for: engineer.id, baseURL: baseURL, store: store))
            }
            let agent =
                engineer.loginMethod.fingerprint.map { "They also connect with `relay-agent view`, which proves the key \($0) (their engineer.key)." }
                ?? "They work in the browser; for `relay-agent view` too: relay-server engineer set-key\(options.repeated) \(engineer.id) --public-key KEY"
            emit(
                json: options.json, engineer.jsonObject.merging(link.jsonObject) { $1 },
                text: """
                    Engineer "\(engineer.login)" added to \(engineer.companyID).
                      id:          \(engineer.id)
                      login:       \(engineer.login)
                      role:        \(engineer.role.rawValue)
                      fingerprint: \(engineer.loginMethod.fingerprint ?? "none (browser only)")
                    \(link.text)
                    \(agent)
                    """)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "List engineers, optionally of one company, with how each logs in (key, or a legacy token to replace with set-key)."
        )
        @OptionGroup var options: DataOptions
        @Option(help: "Only this company's engineers.") var company: String?

        func run() throws {
            let (engineers, web) = try adminAction {
                let store = try options.openStore()
                let engineers = try store.engineers(companyID: company)
                return (engineers, try engineers.map { try store.webCredentials(engineerID: $0.id) })
            }
            emit(
                json: options.json, ["engineers": zip(engineers, web).map { $0.jsonObject.merging($1.jsonObject) { $1 } }],
                text: engineers.isEmpty
                    ? "No engineers. Add one: relay-server engineer add\(options.repeated) --company ID LOGIN --public-key KEY"
                    : engineers.map {
                        "\($0.id)  \($0.companyID)  \($0.login)  \($0.role.rawValue)\($0.disabledAt == nil ? "" : " (disabled)")  \($0.loginMethod.listed)"
                    }
                    .joined(separator: "\n"))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove an engineer; their key (or token) stops working and the relay ends their live sessions.")
        @OptionGroup var options: DataOptions
        @Argument(help: "The engineer id.") var id: String

        func run() throws {
            try adminAction { try options.openStore().removeEngineer(id: id, actor: "cli") }
            emit(json: options.json, ["id": id, "removed": true], text: "Engineer \(id) removed.")
        }
    }

    struct SetKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-key",
            abstract: "Set the public key an engineer logs in with; their old token or key stops working.",
            discussion: """
                This is how an engineer added with a token moves to a key, and how a lost or \
                replaced key is changed. The relay ends the engineer's live sessions that logged \
                in with the old token or key.
                """
        )
        @OptionGroup var options: DataOptions
        @Argument(help: "The engineer id (see `relay-server engineer list`).") var id: String
        @Option(
            help: PublicKeyArgument.help("The engineer's new public key, which `relay-agent keygen --show` prints on their machine"),
            transform: PublicKeyArgument.parse)
        var publicKey: Curve25519.Signing.PublicKey

        func run() throws {
            let engineer = try adminAction { try options.openStore().setEngineerKey(id: id, publicKey: publicKey, actor: "cli") }
            emit(
                json: options.json, engineer.jsonObject,
                text: """
                    Engineer \(engineer.id) ("\(engineer.login)") now logs in with the key \(engineer.loginMethod.fingerprint ?? "").
                    Their old token or key stops working; the relay ends live sessions that logged in with it.
                    """)
        }
    }

    struct SignInLinkCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "signin-link",
            abstract: "Print a new one-time sign-in link for an engineer's browser; earlier links stop working.",
            discussion: """
                The engineer opens the link, sets a new password and enrols their authenticator \
                app again (scanning a QR code), then gets new recovery codes. For a forgotten \
                password or a lost device. The link works once, for 24 hours; until it is used \
                the old password and codes keep working. Send it over a channel only the \
                engineer reads.
                """
        )
        @OptionGroup var options: DataOptions
        @Argument(help: "The engineer id (see `relay-server engineer list`).") var id: String
        @OptionGroup var web: WebAddressOptions

        func run() throws {
            let configuration = try options.configuration()
            let baseURL = try web.baseURL(configuration)
            let link = try adminAction { try IssuedSignInLink.issue(for: id, baseURL: baseURL, store: try options.openStore(configuration)) }
            emit(json: options.json, ["id": id].merging(link.jsonObject) { $1 }, text: link.text)
        }
    }

    struct SetRole: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-role",
            abstract: "Set what an engineer may do in the admin console: engineer, manager, admin or operator.",
            discussion: """
                An admin sees and manages their whole company in the console (/admin); a manager \
                sees the engineers assigned to them and the hosts of their groups; an engineer \
                their own sessions; an operator every company's counts and the relay's settings, \
                but no company's sessions, hosts or people. Put operators in a company of their own.
                """
        )
        @OptionGroup var options: DataOptions
        @Argument(help: "The engineer id (see `relay-server engineer list`).") var id: String
        @Argument(help: "engineer, manager, admin or operator.", transform: { try AccountRole(parsing: $0) }) var role: AccountRole

        func run() throws {
            let engineer = try adminAction { try options.openStore().setRole(engineerID: id, role: role, actor: "cli") }
            emit(json: options.json, engineer.jsonObject, text: "Engineer \(engineer.login) (\(engineer.id)) is now \(engineer.role.rawValue).")
        }
    }

    struct ResetTOTP: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-totp",
            abstract: "Remove an engineer's two-factor enrolment and recovery codes and sign them out of every browser.",
            discussion: """
                The engineer's next sign-in with their password enrols a new authenticator app. \
                Use it when a device is lost and the engineer still knows the password; if not, \
                `signin-link` resets both.
                """
        )
        @OptionGroup var options: DataOptions
        @Argument(help: "The engineer id (see `relay-server engineer list`).") var id: String

        func run() throws {
            try adminAction { try options.openStore().resetTwoFactor(engineerID: id, actor: "cli") }
            emit(
                json: options.json, ["id": id, "totp_reset": true],
                text: """
                    Engineer \(id): two-factor removed, recovery codes deleted, web sessions ended.
                    Their next sign-in with their password enrols a new authenticator app.
                    """)
        }
    }

    /// `engineer rotate` from before keys: hidden, and says what replaced it.
    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Removed: engineers log in with keys; use `engineer set-key`.", shouldDisplay: false)
        @OptionGroup var options: DataOptions
        @Argument(help: "The engineer id.") var id: String?

        func run() throws {
            let id = self.id ?? "ID"
            throw CommandFailure(
                "`engineer rotate` is gone: engineers log in with keys now, and the relay issues no new tokens. On the engineer's machine, "
                    + "`relay-agent keygen --show` prints their public key (`relay-agent keygen` makes one first if they have none); then run "
                    + "`relay-server engineer set-key \(id) --public-key KEY` with it. Their token stops working.")
        }
    }
}

struct HostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host",
        abstract: "Enroll, list, remove hosts for unattended access, or set the key a host logs in with.",
        discussion: """
            Enrolled hosts log in with an Ed25519 key pair made on the host (`relay-agent keygen \
            --host-id ID`); the relay stores the public key only. A host enrolled without \
            --public-key cannot log in until `set-key` gives it its key. Hosts enrolled before \
            keys log in with a secret until they are given a key (`list` shows which; \
            docs/OPERATIONS.md "Moving accounts to keys").
            """,
        subcommands: [Enroll.self, List.self, Remove.self, SetKey.self, Rotate.self]
    )

    struct Enroll: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enroll a host for a company; with --public-key it can log in at once, without one after `host set-key`.")
        @OptionGroup var options: DataOptions
        @Option(help: "The company id (see `relay-server company list`).") var company: String
        @Option(
            help: PublicKeyArgument.help(
                "The host's public key, if it has one already (made on the host with `relay-agent keygen --key-file FILE`); without it, enroll first and set the key with `host set-key`"
            ),
            transform: PublicKeyArgument.parse)
        var publicKey: Curve25519.Signing.PublicKey?
        @Argument(help: "The host's name as engineers see it, e.g. \"회계팀 PC-03\".") var name: String

        func run() throws {
            let host = try adminAction { try options.openStore().enrollHost(companyID: company, name: name, publicKey: publicKey, actor: "cli") }
            let next: String
            if publicKey != nil {
                next = """
                    On the host, with the key file that public key came from, run:
                      \(host.agentCommand(keyFile: "KEY_FILE"))
                    (RELAY and FP: this relay's address and certificate fingerprint, which `relay-server` prints at start;
                    ENGINEER_KEYS: the public keys of the engineers it lets in, or --any-engineer instead.)
                    """
            } else {
                next = """
                    The host cannot log in until it has a key. Next:
                      1. on the host:  relay-agent keygen --host-id \(host.id)      (prints its public key)
                      2. here:         relay-server host set-key\(options.repeated) \(host.id) --public-key KEY
                    """
            }
            emit(
                json: options.json, host.jsonObject,
                text: """
                    Host "\(host.name)" enrolled for \(host.companyID).
                      host id:     \(host.id)
                      fingerprint: \(host.loginMethod.fingerprint ?? "none yet")
                    \(next)
                    """)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List enrolled hosts, optionally of one company, with how each logs in (key, legacy secret, or no key yet).")
        @OptionGroup var options: DataOptions
        @Option(help: "Only this company's hosts.") var company: String?

        func run() throws {
            let hosts = try adminAction { try options.openStore().hosts(companyID: company) }
            emit(
                json: options.json, ["hosts": hosts.map(\.jsonObject)],
                text: hosts.isEmpty
                    ? "No hosts. Enroll one: relay-server host enroll\(options.repeated) --company ID NAME [--public-key KEY]"
                    : hosts.map { "\($0.id)  \($0.companyID)  \($0.name)  \($0.loginMethod.listed)" }.joined(separator: "\n"))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove an enrolled host; its key (or secret) stops working and the relay ends its live sessions.")
        @OptionGroup var options: DataOptions
        @Argument(help: "The host id.") var id: String

        func run() throws {
            try adminAction { try options.openStore().removeHost(id: id, actor: "cli") }
            emit(json: options.json, ["id": id, "removed": true], text: "Host \(id) removed.")
        }
    }

    struct SetKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-key",
            abstract: "Set the public key a host logs in with; its old secret or key stops working.",
            discussion: """
                This gives a host enrolled without a key its key, moves a host enrolled with a \
                secret to a key, and replaces a lost key. The relay ends the host's live \
                sessions that logged in with the old secret or key.
                """
        )
        @OptionGroup var options: DataOptions
        @Argument(help: "The host id (see `relay-server host list`).") var id: String
        @Option(
            help: PublicKeyArgument.help("The host's public key, which `relay-agent keygen --host-id ID` prints on the host"),
            transform: PublicKeyArgument.parse)
        var publicKey: Curve25519.Signing.PublicKey

        func run() throws {
            let host = try adminAction { try options.openStore().setHostKey(id: id, publicKey: publicKey, actor: "cli") }
            emit(
                json: options.json, host.jsonObject,
                text: """
                    Host \(host.id) ("\(host.name)") now logs in with the key \(host.loginMethod.fingerprint ?? "").
                    Its old secret or key stops working; the relay ends live sessions that logged in with it.
                    On the host, run (add --key-file FILE if the key is not in the config folder):
                      \(host.agentCommand(keyFile: nil))
                    """)
        }
    }

    /// `host rotate` from before keys: hidden, and says what replaced it.
    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Removed: hosts log in with keys; use `host set-key`.", shouldDisplay: false)
        @OptionGroup var options: DataOptions
        @Argument(help: "The host id.") var id: String?

        func run() throws {
            let id = self.id ?? "ID"
            throw CommandFailure(
                "`host rotate` is gone: hosts log in with keys now, and the relay issues no new secrets. On the host, "
                    + "`relay-agent keygen --host-id \(id) --show` prints its public key (`relay-agent keygen --host-id \(id)` makes one first if it has none); "
                    + "then run `relay-server host set-key \(id) --public-key KEY` with it. Its secret stops working.")
        }
    }
}

/// `--public-key KEY` as the account commands read it: what `relay-agent keygen` prints.
enum PublicKeyArgument {
    static func help(_ text: String) -> ArgumentHelp {
        ArgumentHelp("\(text): 44 characters of base64, or the whole `ed25519 KEY name` line.", valueName: "KEY")
    }

    /// The key `text` names; a message that says what to give instead if it names none.
    static func parse(_ text: String) throws -> Curve25519.Signing.PublicKey {
        guard let key = PublicKeyText.parse(text) else {
            throw ValidationError("it is not an Ed25519 public key; \(PublicKeyText.expected)")
        }
        return key
    }
}

extension LoginMethod {
    /// How `list` shows it.
    var listed: String {
        switch self {
        case .key(let fingerprint): "key \(fingerprint)"
        case .token: "token (legacy, replayable: run set-key)"
        case .noKey: "no key yet (run set-key)"
        }
    }

    /// The `login_method` of the JSON output.
    var jsonName: String {
        switch self {
        case .key: "key"
        case .token: "token"
        case .noKey: "none"
        }
    }
}

extension Engineer {
    /// An engineer in the JSON output of add, list and set-key.
    var jsonObject: [String: any Sendable] {
        [
            "id": self.id, "company_id": self.companyID, "login": self.login, "role": self.role.rawValue, "disabled": self.disabledAt != nil,
            "created_at": iso8601(self.createdAt),
            "login_method": self.loginMethod.jsonName, "fingerprint": self.loginMethod.fingerprint ?? NSNull(),
        ]
    }
}

extension WebCredentials {
    /// The web sign-in state in `engineer list`'s JSON: whether a password and two-factor
    /// are set, and how many recovery codes are left. Never the hash or the secret.
    var jsonObject: [String: any Sendable] {
        ["web_password": self.passwordHash != nil, "web_totp": self.totpSecret != nil, "recovery_codes_left": self.recoveryCodesLeft]
    }

    /// How `engineer list` shows it.
    var listed: String {
        guard self.passwordHash != nil else { return "no password yet (sign-in link)" }
        guard self.totpSecret != nil else { return "password, two-factor not enrolled" }
        return "password and two-factor, \(self.recoveryCodesLeft) recovery codes left"
    }
}

extension EnrolledHost {
    /// A host in the JSON output of enroll, list and set-key.
    var jsonObject: [String: any Sendable] {
        [
            "id": self.id, "company_id": self.companyID, "name": self.name, "created_at": iso8601(self.createdAt),
            "login_method": self.loginMethod.jsonName, "fingerprint": self.loginMethod.fingerprint ?? NSNull(),
        ]
    }

    /// The command that runs this host, for a key in `keyFile` (nil: the config folder's).
    func agentCommand(keyFile: String?) -> String {
        "relay-agent host --relay RELAY:7443 --fingerprint FP --host-id \(self.id)\(keyFile.map { " --key-file \($0)" } ?? "") --engineer-keys ENGINEER_KEYS"
    }
}

/// `--web-url`: where the relay's web port is, for sign-in links (else the listen address
/// of the config file that ``DataOptions`` reads).
struct WebAddressOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The relay's address as engineers' browsers reach it, e.g. https://relay.example.com (port 443) or https://relay.example.com:7443; without it, the config file's listen address.",
            valueName: "URL"))
    var webURL: String?

    /// `https://HOST[:PORT]` without a trailing slash: `--web-url`, else what
    /// `configuration`'s listen address names.
    func baseURL(_ configuration: RelayConfiguration) throws -> String {
        if let webURL {
            var url = webURL.trimmingCharacters(in: .whitespaces)
            while url.hasSuffix("/") { url.removeLast() }
            guard let parsed = URLComponents(string: url), parsed.scheme == "https", let host = parsed.host, !host.isEmpty,
                parsed.path.isEmpty, parsed.query == nil, parsed.fragment == nil
            else {
                throw CommandFailure("--web-url must be https://HOST or https://HOST:PORT, as browsers reach the relay (got \"\(webURL)\")")
            }
            return url
        }
        // A wildcard listen address is no place a browser can go: the link names this
        // machine as the development certificate does (localhost); --web-url gives the
        // real name.
        let host = ["0.0.0.0", "::", "[::]", ""].contains(configuration.listen.host) ? "localhost" : configuration.listen.host
        let shown = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return configuration.listen.port == 443 ? "https://\(shown)" : "https://\(shown):\(configuration.listen.port)"
    }
}

/// A one-time sign-in link just stored, as the commands print it (RelaySignIn's
/// ``SignInLinkPolicy``: a 256-bit token in the fragment, its digest stored, 24 hours).
struct IssuedSignInLink {
    let url: String
    let expiresAt: Date

    static func issue(
        for engineerID: String, baseURL: String, store: any AccountStore, actor: String = "cli", now: Date = Date()
    ) throws -> IssuedSignInLink {
        let token = SignInSecret()
        let policy = SignInLinkPolicy()
        let link = SignInLink(digest: token.digest, engineerID: engineerID, createdAt: now, expiresAt: policy.expiry(issuedAt: now))
        try store.issueSignInLink(link, actor: actor)
        return IssuedSignInLink(url: SignInLinkPolicy.url(baseURL: baseURL, token: token), expiresAt: link.expiresAt)
    }

    var jsonObject: [String: any Sendable] { ["signin_link": self.url, "signin_link_expires_at": iso8601(self.expiresAt)] }

    var text: String {
        """
        One-time sign-in link for the browser (sets the password and two-factor; works once, until \(iso8601(self.expiresAt))):
          \(self.url)
        It is shown only this once: send it over a channel only the engineer reads. Earlier links stop working.
        """
    }
}
