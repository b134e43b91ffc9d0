import ArgumentParser
import Foundation
import RelayClient
import RelayWire

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make the identity key of this engineer or of an enrolled host, show it, or forget a host's pinned key.",
        discussion: """
            Each engineer and each enrolled host has an Ed25519 key, which never leaves its \
            file. It logs them in to the relay (TLS proves it; no secret the relay could replay \
            is sent), and it proves who is at each end of the session, which is encrypted end to \
            end between viewer and host: the relay only forwards what it cannot read or change. \
            The relay's admin registers the public key once: `relay-server engineer add \
            --public-key KEY` or `relay-server host set-key ID --public-key KEY`.

            The engineer key (the default) is yours: `relay-agent view` proves with it who is \
            connecting. A host key (--host-id ID, run on that enrolled host) is the PC's: the \
            first time a viewer connects to the host through a relay it pins the key (in \
            known_hosts, like ssh) and from then on refuses any other key for that host, showing \
            both fingerprints and how to check and re-pin. Attended hosts (--code) make a fresh \
            key for each session and need none.

            Files live in $XDG_CONFIG_HOME/supportrelay, or ~/.config/supportrelay (created with \
            mode 0700): engineer.key, host-ID.key and known_hosts, each with mode 0600. A key \
            file that its group or other users can read is refused (chmod 600 FILE). --key-file \
            puts a key elsewhere.

            keygen prints the public key (base64), which may be shared, and its SHA256 \
            fingerprint, which people compare. It never replaces a key: to make a new one, \
            delete the file first, knowing that every viewer that pinned the old host key will \
            refuse the new one until it re-pins. --show prints them for an existing key. \
            --forget-host ID --relay HOST:PORT removes a pinned host key from your known_hosts, \
            after you have checked the host's new fingerprint with its owner.
            """
    )

    @Option(help: ArgumentHelp("Make (or --show) the key of this enrolled host, on the host: the id from `relay-server host enroll`.", valueName: "ID"))
    var hostID: String?
    @Option(help: ArgumentHelp("The key file to make or show, instead of the one in the config folder.", valueName: "FILE"))
    var keyFile: String?
    @Flag(help: "Print the public key and fingerprint of an existing key; make none.") var show = false
    @Option(help: ArgumentHelp("Remove the pinned key of this host from your known_hosts (with --relay).", valueName: "ID"))
    var forgetHost: String?
    @Option(help: ArgumentHelp("The relay the pin to forget is for, as you give it to `relay-agent view`.", valueName: "HOST:PORT"))
    var relay: String?

    func validate() throws {
        if self.forgetHost != nil {
            guard self.relay != nil else {
                throw ValidationError("--forget-host needs the relay the host was pinned for: --relay HOST:PORT, as you give it to `relay-agent view`")
            }
            guard self.hostID == nil, self.keyFile == nil, !self.show else {
                throw ValidationError("--forget-host changes known_hosts only; give it without --host-id, --key-file and --show")
            }
        } else if self.relay != nil {
            throw ValidationError("--relay is for --forget-host ID: which relay's pin of that host to remove")
        }
        if let hostID, hostID.isEmpty { throw ValidationError("--host-id must not be empty; give the id from `relay-server host enroll`") }
        if let keyFile, keyFile.isEmpty { throw ValidationError("--key-file must not be empty") }
    }

    func run() throws {
        do {
            if let forgetHost, let relay {
                try self.forget(hostID: forgetHost, relay: relay)
            } else if self.show {
                try self.showKey()
            } else {
                try self.makeKey()
            }
        } catch let error as AgentFailure {
            throw error
        } catch {
            throw AgentFailure(description: "\(error)")
        }
    }

    /// What the key is, in messages: "your engineer key", "the key of host ho_1".
    private var what: String {
        if let hostID { return "the identity key of host \(hostID)" }
        return self.keyFile == nil ? "your engineer key" : "the identity key"
    }

    /// The key file, and the config folder to create when it is the default one.
    private func location() throws -> (path: String, folder: ConfigFolder?) {
        if let keyFile { return (keyFile, nil) }
        let folder = try ConfigFolder.locate()
        return (self.hostID.map { folder.hostKeyPath(hostID: $0) } ?? folder.engineerKeyPath, folder)
    }

    /// `relay-agent keygen …` for the same key, for messages.
    private var sameKeyArguments: String {
        var arguments = ""
        if let hostID { arguments += " --host-id \(Self.quoted(hostID))" }
        if let keyFile { arguments += " --key-file \(Self.quoted(keyFile))" }
        return arguments
    }

    private func makeKey() throws {
        let (path, folder) = try self.location()
        try folder?.create()
        let publicKey: (base64: String, fingerprint: String)
        do {
            let key = try IdentityKeyFile.create(at: path).publicKey
            publicKey = (KeyFingerprint.base64(key), KeyFingerprint.of(key))
        } catch {
            guard error.kind == .alreadyExists else { throw error }
            throw AgentFailure(description: self.refusal(path))
        }
        say("Created \(self.what): \(path) (mode 0600; keep it private, and in your backups).")
        self.printPublic(publicKey)
        if let hostID {
            say(
                "Viewers pin this key the first time they connect to host \(hostID); an engineer who wants to be sure can compare the fingerprint their viewer prints with the one above."
            )
        }
    }

    /// Why an existing key is not replaced, and how to replace it deliberately.
    private func refusal(_ path: String) -> String {
        let existing: String
        do {
            existing = "holds \(self.what) (fingerprint \(KeyFingerprint.of(try IdentityKeyFile.load(at: path).publicKey)))"
        } catch {
            existing = "already exists (and cannot be used as a key: \(error))"
        }
        var consequence = "hosts and relays that know your old public key must be given the new one"
        if let hostID {
            consequence =
                "every viewer that pinned the old key of host \(hostID) will refuse the new one until it re-pins it (`relay-agent keygen --forget-host \(Self.quoted(hostID)) --relay HOST:PORT` there, after checking the new fingerprint)"
        }
        return "\(path) \(existing); keygen never replaces a key. Print it with `relay-agent keygen --show\(self.sameKeyArguments)`. "
            + "To replace it deliberately, delete the file first (rm \(Self.quoted(path))) and run keygen again: \(consequence)."
    }

    private func showKey() throws {
        let (path, _) = try self.location()
        let publicKey: (base64: String, fingerprint: String)
        do {
            let key = try IdentityKeyFile.load(at: path).publicKey
            publicKey = (KeyFingerprint.base64(key), KeyFingerprint.of(key))
        } catch {
            guard error.kind == .notFound else { throw error }
            throw AgentFailure(description: "there is no key at \(path); make one with `relay-agent keygen\(self.sameKeyArguments)`")
        }
        say("\(self.what.prefix(1).uppercased() + self.what.dropFirst()): \(path)")
        self.printPublic(publicKey)
    }

    private func printPublic(_ key: (base64: String, fingerprint: String)) {
        say("public key:  \(key.base64)")
        say("fingerprint: \(key.fingerprint)")
        if let hostID {
            say("for the relay's admin:  relay-server host set-key \(Self.quoted(hostID)) --public-key \(key.base64)")
        } else if self.keyFile != nil {
            // A key in a file of its own may be a host's, made before its enrollment.
            say("for the relay's admin, as an engineer's key:  relay-server engineer add --company ID LOGIN --public-key \(key.base64)")
            say("                       or as a host's key:    relay-server host enroll --company ID NAME --public-key \(key.base64)")
        } else {
            // Ready to paste into an enrolled host's --engineer-keys file, and for the relay's admin.
            say("for a host's --engineer-keys file: ed25519 \(key.base64) \(ProcessInfo.processInfo.userName)")
            say("for the relay's admin:  relay-server engineer add --company ID \(Self.quoted(ProcessInfo.processInfo.userName)) --public-key \(key.base64)")
        }
    }

    private func forget(hostID: String, relay: String) throws {
        let knownHosts = try ConfigFolder.locate().knownHosts
        let removed = try knownHosts.forget(relay: relay, hostID: hostID)
        let canonical = KnownHosts.canonicalRelay(relay) ?? relay
        if removed == 0 {
            say("No key of host \(hostID) at relay \(canonical) is pinned in \(knownHosts.path); nothing changed.")
        } else {
            say(
                "Removed \(removed == 1 ? "the pinned key" : "\(removed) lines") of host \(hostID) at relay \(canonical) from \(knownHosts.path). The next connection to it pins the key it presents: check that key's fingerprint with the host's owner."
            )
        }
    }

    private static func quoted(_ text: String) -> String {
        text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "/._-~+:@".contains($0)) }
            ? text : "'\(text.replacingOccurrences(of: "'", with: "'\\''"))'"
    }
}
