import ArgumentParser
import Foundation
import RelayStore

struct CompanyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "company",
        abstract: "Add, list, remove companies, rotate a company's admin token, set its policy, or place and release legal holds.",
        subcommands: [Add.self, List.self, Remove.self, Rotate.self, Policy.self, Hold.self, Release.self, Holds.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a company; prints its id and admin token (shown once).")
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
                    The token is shown only this once: store it in a password manager.
                    Next: relay-server engineer add --company \(company.id) LOGIN
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
                    ? "No companies yet. Add one: relay-server company add NAME"
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
        static let configuration = CommandConfiguration(abstract: "Replace a company's admin token; the old one stops working.")
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
                    Lift it with: relay-server company release \(id)
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
                    (or now: relay-server usage purge).
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
        abstract: "Add, list, remove support engineers, or rotate an engineer's token.",
        subcommands: [Add.self, List.self, Remove.self, Rotate.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an engineer to a company; prints the engineer token (shown once).")
        @OptionGroup var options: DataOptions
        @Option(help: "The company id (see `relay-server company list`).") var company: String
        @Argument(help: "The engineer's login, e.g. kim.minji.") var login: String

        func run() throws {
            let (engineer, token) = try adminAction { try options.openStore().addEngineer(companyID: company, login: login, actor: "cli") }
            emit(
                json: options.json, ["id": engineer.id, "company_id": engineer.companyID, "login": engineer.login, "token": token],
                text: """
                    Engineer "\(engineer.login)" added to \(engineer.companyID).
                      id:    \(engineer.id)
                      token: \(token)
                    The token is shown only this once. The engineer uses it with `relay-agent view --token`.
                    """)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List engineers, optionally of one company.")
        @OptionGroup var options: DataOptions
        @Option(help: "Only this company's engineers.") var company: String?

        func run() throws {
            let engineers = try adminAction { try options.openStore().engineers(companyID: company) }
            let rows: [[String: any Sendable]] = engineers.map {
                ["id": $0.id, "company_id": $0.companyID, "login": $0.login, "created_at": iso8601($0.createdAt)]
            }
            emit(
                json: options.json, ["engineers": rows],
                text: engineers.isEmpty
                    ? "No engineers. Add one: relay-server engineer add --company ID LOGIN"
                    : engineers.map { "\($0.id)  \($0.companyID)  \($0.login)" }.joined(separator: "\n"))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an engineer; their token stops working.")
        @OptionGroup var options: DataOptions
        @Argument(help: "The engineer id.") var id: String

        func run() throws {
            try adminAction { try options.openStore().removeEngineer(id: id, actor: "cli") }
            emit(json: options.json, ["id": id, "removed": true], text: "Engineer \(id) removed.")
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace an engineer's token; the old one stops working.")
        @OptionGroup var options: DataOptions
        @Argument(help: "The engineer id.") var id: String

        func run() throws {
            let token = try adminAction { try options.openStore().rotateEngineerToken(id: id, actor: "cli") }
            emit(json: options.json, ["id": id, "token": token], text: "New token for \(id): \(token)\nThe token is shown only this once.")
        }
    }
}

struct HostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host",
        abstract: "Enroll, list, remove hosts for unattended access, or rotate a host's secret.",
        subcommands: [Enroll.self, List.self, Remove.self, Rotate.self]
    )

    struct Enroll: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enroll a host for a company; prints its id and secret (shown once).")
        @OptionGroup var options: DataOptions
        @Option(help: "The company id (see `relay-server company list`).") var company: String
        @Argument(help: "The host's name as engineers see it, e.g. \"회계팀 PC-03\".") var name: String

        func run() throws {
            let (host, secret) = try adminAction { try options.openStore().enrollHost(companyID: company, name: name, actor: "cli") }
            emit(
                json: options.json, ["id": host.id, "company_id": host.companyID, "name": host.name, "secret": secret],
                text: """
                    Host "\(host.name)" enrolled for \(host.companyID).
                      host id: \(host.id)
                      secret:  \(secret)
                    The secret is shown only this once. On the host run:
                      relay-agent host --relay RELAY:7443 --fingerprint FP --host-id \(host.id) --secret \(secret)
                    """)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List enrolled hosts, optionally of one company.")
        @OptionGroup var options: DataOptions
        @Option(help: "Only this company's hosts.") var company: String?

        func run() throws {
            let hosts = try adminAction { try options.openStore().hosts(companyID: company) }
            let rows: [[String: any Sendable]] = hosts.map {
                ["id": $0.id, "company_id": $0.companyID, "name": $0.name, "created_at": iso8601($0.createdAt)]
            }
            emit(
                json: options.json, ["hosts": rows],
                text: hosts.isEmpty
                    ? "No hosts. Enroll one: relay-server host enroll --company ID NAME"
                    : hosts.map { "\($0.id)  \($0.companyID)  \($0.name)" }.joined(separator: "\n"))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an enrolled host; its secret stops working.")
        @OptionGroup var options: DataOptions
        @Argument(help: "The host id.") var id: String

        func run() throws {
            try adminAction { try options.openStore().removeHost(id: id, actor: "cli") }
            emit(json: options.json, ["id": id, "removed": true], text: "Host \(id) removed.")
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace a host's secret; the old one stops working.")
        @OptionGroup var options: DataOptions
        @Argument(help: "The host id.") var id: String

        func run() throws {
            let secret = try adminAction { try options.openStore().rotateHostSecret(id: id, actor: "cli") }
            emit(json: options.json, ["id": id, "secret": secret], text: "New secret for host \(id): \(secret)\nThe secret is shown only this once.")
        }
    }
}
