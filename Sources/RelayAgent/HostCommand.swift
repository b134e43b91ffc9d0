import ArgumentParser
import Crypto
import Foundation
import RelayClient
import RelayScreen
import RelaySecureChannel
import RelayWire
import Synchronization

struct HostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host",
        abstract: "Share this PC's screen: join an engineer by support code, or stay registered as an enrolled host.",
        discussion: """
            Attended: `relay-agent host --relay R --fingerprint FP --code 123456` with the code the \
            engineer read out; one session, then it exits. When the engineer connects, the agent \
            shows their name and company as the relay verified them and asks whether to allow \
            them (a), allow viewing only (v) or refuse (r); no answer within 60 s refuses, and so \
            does a host with no terminal to ask on, unless --accept decides in advance.

            Unattended: `--host-id ID` from `relay-server host enroll`. The host logs in to the \
            relay with its key (--key-file, or host-ID.key in the config folder, created on first \
            start): TLS proves the key without sending any secret the relay or a proxy could \
            replay. The relay's admin sets the key once with `relay-server host set-key ID \
            --public-key KEY` (`relay-agent keygen --show --host-id ID` prints KEY). The agent \
            stays registered, reconnecting with back-off, and serves one engineer of the \
            enrolling company at a time until stopped. No one is asked (there need be no one at \
            the PC), but every connection and departure is printed. Hosts enrolled before key \
            login may still give their secret (--secret-file FILE, --secret-file - or \
            $RELAY_HOST_SECRET), with a warning, until their key is set.

            Every session is encrypted end to end between this PC and the engineer: the relay \
            forwards it but cannot read or change it. An enrolled host proves itself with its key \
            (--key-file, created on first start in the config folder; its fingerprint is printed \
            at start so that engineers can check the one their viewer pinned). An attended host \
            shows a six-digit security code with the question: the engineer's screen shows the \
            same code, and a different one means someone is in between.

            The screen comes from --source: the X display in $DISPLAY by default (`x11`), another \
            display (`x11::1`), a folder of PNG frames (`replay:DIR`), or a generated scene \
            (`synthetic:scrolling-text`); `--source help` lists them. The engineer's pointer and \
            keys are injected into an X display; updates go out only when the viewer asks, at \
            most --fps a second. With full control an X display's clipboard is shared both \
            ways: the engineer's clipboard text is put on CLIPBOARD and PRIMARY, and text \
            copied on the desktop during the session goes to the engineer (and is printed).

            Ctrl-C (SIGINT) or SIGTERM ends the session with a Bye, releases any key or button \
            the engineer still holds and restores the keyboard mapping; a second one exits at once.
            """
    )

    /// What the customer decides in advance with `--accept`.
    enum Acceptance: String, ExpressibleByArgument, CaseIterable {
        case full
        case viewOnly = "view-only"

        var access: SessionAccess { self == .full ? .fullControl : .viewOnly }
    }

    @OptionGroup var relay: RelayOptions
    @Option(help: "The six-digit support code the engineer gave you.") var code: String?
    @Option(help: "This host's id, from `relay-server host enroll`.") var hostID: String?
    @Option(
        help: ArgumentHelp(
            "Legacy, for hosts enrolled before key login: a file holding this host's secret, readable by you only (chmod 600); `-` reads it from standard input. Or set RELAY_HOST_SECRET.",
            valueName: "FILE"))
    var secretFile: String?
    @Option(help: ArgumentHelp("This host's secret itself: visible to every user in `ps`, for tests only (prefer --secret-file).", visibility: .hidden))
    var secret: String?
    @Option(
        help: ArgumentHelp(
            "Decide in advance instead of being asked: `full` (view and control) or `view-only`. Unattended hosts: default full.", valueName: "full|view-only"))
    var accept: Acceptance?
    @Flag(help: "Enrolled hosts: exit after one session instead of registering again.") var once = false
    @Option(help: ArgumentHelp("What to share: x11[:DISPLAY], replay:DIR, synthetic:NAME; `help` lists them. Default: x11 on $DISPLAY.", valueName: "SRC"))
    var source: String?
    @Option(help: "The most screen captures per second while the engineer waits for an update.") var fps: Double = 15
    @Flag(help: "replay: start again after the last frame instead of holding it.") var loop = false
    @Option(help: "Put this text on the engineer's clipboard once they are allowed in.") var clipboard: String?
    @Option(help: ArgumentHelp("Attended: the name the engineer sees for this PC (default: its hostname).", valueName: "NAME"))
    var name: String?
    @Option(
        help: ArgumentHelp(
            "Enrolled hosts: this host's key, for the relay login and end to end (default: host-ID.key in $XDG_CONFIG_HOME/supportrelay or ~/.config/supportrelay, created with mode 0600 if missing).",
            valueName: "FILE"))
    var keyFile: String?
    @Option(
        help: ArgumentHelp(
            "Enrolled hosts: let in only the engineers whose end-to-end keys this file lists (`ed25519 KEY name` per line, as `relay-agent keygen --show` prints them on each engineer's machine); read again for every session.",
            valueName: "FILE"))
    var engineerKeys: String?
    @Flag(
        help:
            "Enrolled hosts: let in any engineer of the company that the relay pairs with this host, instead of --engineer-keys: the relay then decides who connects (docs/SECURITY.md §8.3)."
    ) var anyEngineer = false

    /// What an attended session tells the engineer this PC is called (the relay adds the
    /// address it sees, and shortens a long name).
    var machineName: String {
        self.name ?? ProcessInfo.processInfo.hostName
    }

    func validate() throws {
        if self.source == "help" { return }
        if let name {
            guard self.code != nil else {
                throw ValidationError("--name is for attended sessions (--code); an enrolled host's name is set at `relay-server host enroll`")
            }
            guard !name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, name.utf8.count <= 256 else {
                throw ValidationError("--name must be 1 to 256 bytes of text, e.g. --name \"Accounts desk 3\"")
            }
        }
        let secretGiven = self.secret != nil || self.secretFile != nil
        switch (self.code, self.hostID) {
        case (let code?, nil):
            guard SupportCode(code) != nil else { throw ValidationError("--code must be six digits, e.g. 123456") }
            guard !secretGiven else { throw ValidationError("--secret-file is for enrolled hosts (--host-id); an attended host needs only --code") }
        case (nil, .some):
            if self.secret != nil, self.secretFile != nil { throw ValidationError("give --secret or --secret-file, not both") }
        case (nil, nil):
            throw ValidationError("give --code (attended) or --host-id (enrolled host)")
        case (.some, .some):
            throw ValidationError("give either --code or --host-id, not both")
        }
        if self.engineerKeys != nil || self.anyEngineer, self.hostID == nil {
            throw ValidationError("--engineer-keys and --any-engineer are for enrolled hosts (--host-id); an attended host's customer decides at the prompt")
        }
        if self.hostID != nil {
            switch (self.engineerKeys, self.anyEngineer) {
            case (nil, false):
                throw ValidationError(
                    "an enrolled host must be told whom to let in: --engineer-keys FILE (your engineers' keys, from `relay-agent keygen --show` on their machines) or --any-engineer (any engineer of the company that the relay pairs with it)"
                )
            case (.some, true): throw ValidationError("give --engineer-keys or --any-engineer, not both")
            default: break
            }
        }
        if self.keyFile != nil, self.hostID == nil {
            throw ValidationError("--key-file is for enrolled hosts (--host-id); an attended host uses a new key for each session")
        }
        guard self.fps > 0, self.fps <= 120 else { throw ValidationError("--fps must be between 0 and 120, e.g. 15") }
        _ = try self.specification()
    }

    func specification() throws -> ScreenSourceSpecification {
        do {
            if let source { return try ScreenSourceSpecification(parsing: source) }
            guard ProcessInfo.processInfo.environment["DISPLAY"].map({ !$0.isEmpty }) == true else {
                throw ValidationError(
                    "there is no X display to share ($DISPLAY is not set): run on the desktop, or pick one with --source (`--source help` lists them)")
            }
            return try ScreenSourceSpecification(parsing: "x11")
        } catch let error as ScreenSourceError {
            throw ValidationError("--source: \(error)")
        }
    }

    func run() async throws {
        if self.source == "help" {
            print(ScreenSourceSpecification.helpText)
            return
        }
        let auth: HostAuth
        let identity: Curve25519.Signing.PrivateKey
        if let code = self.code.flatMap(SupportCode.init) {
            auth = .namedSupportCode(code, machineName: self.machineName)
            identity = Curve25519.Signing.PrivateKey()
        } else if SecretInput.hostSecret.isGiven(flagValue: self.secret, file: self.secretFile, environment: ProcessInfo.processInfo.environment) {
            let secret = try SecretInput.hostSecret.value(flagValue: self.secret, file: self.secretFile)
            auth = .enrolled(hostID: self.hostID!, secret: secret)
            identity = try self.enrolledIdentity(hostID: self.hostID!)
            say(
                "Warning: logging in with the host secret, which the relay (or anyone who breaks into it, or sits in front of it with its TLS key) could replay. Ask the relay's admin to run `relay-server host set-key \(self.hostID!) --public-key \(KeyFingerprint.base64(identity.publicKey))`, then start without the secret."
            )
        } else {
            auth = .key(hostID: self.hostID!)
            identity = try self.enrolledIdentity(hostID: self.hostID!)
        }
        if let engineerKeys {
            // Read now so that a broken list stops the agent at start; again for every session.
            let engineers = try AuthorizedEngineers.load(from: engineerKeys)
            say("Only the engineers whose keys are in \(engineers.path) are let in (\(engineers.entries.count) now; the file is read again for every session).")
        } else if self.anyEngineer {
            say("Any engineer the relay pairs with this host is let in (--any-engineer): the relay decides who may connect.")
        }
        let screen: any ScreenSource
        do {
            screen = try self.specification().open(fps: self.fps, loop: self.loop)
        } catch {
            throw AgentFailure(description: "\(error)")
        }
        // Whatever happens below, the display is given back as it was (REVIEW.md D4).
        defer { screen.close() }
        if let display = screen as? X11ScreenSource { say("Capturing \(display.name) with \(display.captureMethod).") }
        let address = try self.relay.address()
        let stop = StopRequest(byeText: "The customer stopped relay-agent.")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var received = 0
                for await number in signalStream(SIGINT, SIGTERM) {
                    received += 1
                    if received == 1 {
                        say("\nStopping (\(signalName(number))): ending the session and restoring the display; press Ctrl-C again to quit at once.")
                        await stop.request(number)
                    } else {
                        screen.close()
                        say("Stopped at once.")
                        Foundation.exit(128 + number)
                    }
                }
            }
            defer { group.cancelAll() }
            if auth.supportCode == nil {
                try await self.keepRegistration(address: address, auth: auth, identity: identity, screen: screen, stop: stop)
            } else {
                do {
                    try await self.session(address: address, auth: auth, identity: identity, screen: screen, stop: stop)
                } catch {
                    if stop.isRequested { return say("Stopped.") }
                    throw fail(error)
                }
            }
        }
    }

    /// Unattended: register, serve a session, register again; back off on failures. A host
    /// that still gives its legacy secret moves to its key once the relay refuses the
    /// secret: the admin ran `host set-key` with the key this host printed, and the relay
    /// ended the secret's registration (docs/OPERATIONS.md "Moving accounts to keys").
    private func keepRegistration(
        address: RelayAddress, auth: HostAuth, identity: Curve25519.Signing.PrivateKey, screen: any ScreenSource, stop: StopRequest
    ) async throws {
        var auth = auth
        var backoff = RegistrationBackoff()
        while !stop.isRequested {
            do {
                try await self.session(address: address, auth: auth, identity: identity, screen: screen, stop: stop)
                backoff.reset()
                if self.once { return }
            } catch _ where stop.isRequested {
                break
            } catch let error as RelayClientError where error.code == .authenticationFailed && auth.isLegacySecret {
                say("The relay refused this host's secret; logging in with its key instead (the relay's admin may have set it).")
                auth = .key(hostID: self.hostID!)
            } catch let error as RelayClientError where error.code == .authenticationFailed || error.kind == .configuration || error.kind == .tls {
                // Retrying cannot fix these: the key or secret, the trust settings or the relay are wrong.
                throw fail(error)
            } catch let error as ScreenSessionError where error.kind == .screenTooLarge {
                // Nor this: the screen stays too large to announce until its resolution changes.
                throw fail(error)
            } catch let error as AgentFailure {
                throw error
            } catch let error as SecureChannelError {
                // One engineer's broken or tampered session: say so, and serve the next one,
                // after the back-off (a relay that breaks every session must not make it spin);
                // with --once that session was the one.
                if self.once { throw fail(error) }
                let delay = backoff.next()
                say("\(fail(error).description)\nRegistering again in \(String(format: "%.1f", delay.seconds)) s.")
                await stop.sleep(for: delay.duration)
            } catch {
                if self.once { throw fail(error) }
                let delay = backoff.next()
                say("\(fail(error).description)\nRetrying in \(String(format: "%.1f", delay.seconds)) s.")
                await stop.sleep(for: delay.duration)
            }
        }
        say("Stopped.")
    }

    /// An enrolled host's end-to-end key: --key-file, or the config folder's, made on first use.
    private func enrolledIdentity(hostID: String) throws -> Curve25519.Signing.PrivateKey {
        let (key, created): (Curve25519.Signing.PrivateKey, Bool)
        let path: String
        if let keyFile = self.keyFile {
            // A given file must exist: a typo must not make a new identity, which every viewer
            // that pinned this host would refuse. `relay-agent keygen --key-file` makes one.
            (key, created) = (try IdentityKeyFile.load(at: keyFile), false)
            path = keyFile
        } else {
            let folder = try EndToEnd.configFolder()
            (key, created) = try folder.hostKey(hostID: hostID)
            path = folder.hostKeyPath(hostID: hostID)
        }
        say("\(created ? "Created this host's key" : "This host's key") \(KeyFingerprint.of(key.publicKey)) (\(path)).")
        if created {
            say(
                "The relay lets this host in once its admin has run:\n  relay-server host set-key \(hostID) --public-key \(KeyFingerprint.base64(key.publicKey))"
            )
        }
        return key
    }

    private func session(
        address: RelayAddress, auth: HostAuth, identity: Curve25519.Signing.PrivateKey, screen: any ScreenSource, stop: StopRequest
    ) async throws {
        // A key login presents the host's key as the TLS client certificate.
        let clientKey: Curve25519.Signing.PrivateKey? = if case .key = auth { identity } else { nil }
        try await RelayConnection.withConnection(to: address, trust: self.relay.trust, clientKey: clientKey) { connection in
            guard stop.connected(connection.sender) else { return }
            defer { stop.disconnected() }
            let allowed = try await connection.hello(role: .host).capabilities
            let paired: Paired
            // The name this host's key signs: what it knows of itself, not what the relay says.
            let name = self.hostID ?? self.machineName
            switch try await connection.authenticate(host: auth) {
            case .paired(let message):
                paired = message
            case .hostRegistered(let registration):
                say("Registered with the relay as \"\(PeerText.printable(registration.hostName))\"; waiting for an engineer.")
                paired = try await connection.waitForPairing()
            default:
                throw AgentFailure(description: "the relay answered unexpectedly")
            }
            guard
                let secure = try await EndToEnd.establish(
                    connection, role: .host, identity: identity, name: name, paired: paired, stopped: { stop.isRequested })
            else { return }
            let stopSession = stop.sessionStarts()
            let proof = EndToEnd.Proof(secure)
            if let refusal = self.refusal(of: secure.peer) {
                say("Refused an engineer whose key \(proof.fingerprint) is not let in: \(refusal) (the relay named them \(ConsentPrompt(paired).who)).")
                let text =
                    "This host lets in only the engineers its administrator listed, and your key \(proof.fingerprint) is not one of them; ask them to add it."
                await StopRequest.sayBye(Bye(reason: .declined, text: text), on: secure.sender, grace: .seconds(2))
                return
            }
            let prompt = ConsentPrompt(paired, proof: proof)
            let notes = SessionNotes()
            let consent = self.consent(for: paired, prompt: prompt, notes: notes)
            let started = Date()
            if case .granted(let access) = consent {
                // Unattended (or --accept): nobody is asked, but the customer is told.
                say(
                    "\(prompt.who) connected at \(Self.clock(started)); they can \(access == .fullControl ? "view and control" : "view (view only)") this screen. Sharing \(screen.name).\n\(proof.lines(for: .host, mode: self.code != nil ? .attended : .unattended))"
                )
            }
            let session = HostScreenSession(
                source: screen,
                options: .init(
                    framesPerSecond: self.fps, clipboard: self.clipboard, desktopClipboard: Self.desktopClipboard(of: screen), consent: consent,
                    // Glyphs only for a viewer that keeps the table, through a relay that allows them (§3).
                    glyphs: allowed.contains(.glyphs) && paired.peerCapabilities.contains(.glyphs)))
            let outcome = try await session.run(on: secure, stop: stopSession) { event in
                switch event {
                case .accessGranted(let access):
                    notes.granted.store(true, ordering: .relaxed)
                    if case .ask = consent { say("Allowed (\(access)); sharing \(screen.name).") }
                case .screen(let width, let height): say("  screen \(width)×\(height)")
                case .clipboard(let text): say("  clipboard from the engineer: \(PeerText.printable(text, limit: 200))")
                case .clipboardSent(let text): say("  clipboard to the engineer: \(PeerText.printable(text, limit: 200))")
                case .clipboardProblem(let text): say("  \(PeerText.printable(text))")
                case .inputFailed(let reason): say("  could not inject input: \(reason)")
                case .inputIgnored: say("  the engineer tried to use the mouse or keyboard: ignored (view only)")
                }
            }
            let left = "\(prompt.engineer.isEmpty ? "The engineer" : "Engineer " + prompt.engineer) left at \(Self.clock(Date()))"
            switch outcome {
            case .bye(let bye):
                let text = PeerText.printable(bye.text)
                say("Session ended: \(text)\(text.hasSuffix(".") ? "" : ".") \(left).")
            case .closed: say("Session ended: the relay closed the connection. \(left).")
            case .stopped where !notes.granted.load(ordering: .relaxed): say("Stopped before the engineer was let in; nothing was shared.")
            case .stopped: say("Session stopped. \(left).")
            case .declined:
                if let reason = notes.refusal.withLock({ $0 }) { throw AgentFailure(description: reason) }
                say("You refused the engineer; nothing was shared.")
            }
        }
    }

    /// An X display's clipboard, shared both ways in each session with full control: the X
    /// CLIPBOARD and PRIMARY selections on a connection and a thread of their own. Other
    /// sources have none: the engineer's clipboard text is only printed.
    private static func desktopClipboard(of screen: any ScreenSource) -> (@Sendable (Int) throws -> any DesktopClipboard)? {
        guard let display = (screen as? X11ScreenSource)?.name else { return nil }
        return { limit in try X11Clipboard.start(display: display, maximumTextLength: limit) }
    }

    /// Why the engineer with this key is not let in, by --engineer-keys (read again now, so
    /// that a removed engineer is refused from the next session on); nil to let them in.
    private func refusal(of engineer: PeerIdentity) -> String? {
        guard let engineerKeys else { return nil }
        do {
            let engineers = try AuthorizedEngineers.load(from: engineerKeys)
            return engineers.entry(for: engineer.publicKey) == nil ? "not listed in \(engineers.path)" : nil
        } catch {
            return "\(engineerKeys) could not be read (\(error.description))"
        }
    }

    /// How this session decides what the engineer may do (PROTOCOL.md §5.2.7).
    private func consent(for paired: Paired, prompt: ConsentPrompt, notes: SessionNotes) -> Consent {
        if let accept { return .granted(accept.access) }
        // Unattended hosts are not asked: there need be no one at the PC, and the company
        // enrolled it so that its engineers can reach it (only they can, §8.3). Decided by
        // how this host logged in, never by Paired's mode, which is the relay's word: a relay
        // must not be able to skip the customer's question (docs/SECURITY.md).
        if self.hostID != nil { return .granted(.fullControl) }
        guard TerminalInput.isTerminal else {
            return .ask {
                let reason =
                    "\(prompt.who) wants to view and control this screen, but there is no terminal to ask you on, so they were refused. Run relay-agent host in a terminal, or decide in advance with --accept full or --accept view-only."
                notes.refusal.withLock { $0 = reason }
                return .decline("No one at the customer's PC could be asked to accept (no terminal).")
            }
        }
        return .ask {
            let decision = await prompt.ask(read: TerminalInput.readLine(within:), say: say)
            if case .decline(let text) = decision, text != ConsentPrompt.refusedText {
                notes.refusal.withLock { $0 = "The engineer was refused and nothing was shared: \(text)" }
            }
            return decision
        }
    }

    private static func clock(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        return formatter.string(from: date)
    }
}

/// What a host session's closures note for the messages after it: whether access was
/// granted, and why the customer could not be asked, if so.
private final class SessionNotes: Sendable {
    let granted = Atomic(false)
    let refusal = Mutex<String?>(nil)
}

/// Exponential back-off with jitter for an enrolled host's registration: 1 s doubling up
/// to 60 s, each delay drawn from 50–100 % of its step so a fleet does not reconnect in step.
struct RegistrationBackoff {
    private var step = 1.0
    let maximum = 60.0

    mutating func next() -> (seconds: Double, duration: Duration) {
        let seconds = Double.random(in: self.step / 2...self.step)
        self.step = min(self.step * 2, self.maximum)
        return (seconds, .milliseconds(Int(seconds * 1000)))
    }

    mutating func reset() { self.step = 1.0 }
}

extension HostAuth {
    /// The legacy login of an enrolled host: a replayable secret.
    fileprivate var isLegacySecret: Bool {
        if case .enrolled = self { true } else { false }
    }
}
