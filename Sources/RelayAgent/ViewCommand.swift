import ArgumentParser
import Crypto
import Foundation
import RelayClient
import RelayScreen
import RelaySecureChannel
import RelayTileCodec
import RelayWire
import Synchronization

struct ViewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "view",
        abstract: "Reach a PC: ask for a support code for a customer, or connect to an enrolled host.",
        discussion: """
            `--new-code` prints a six-digit code for the customer to enter in `relay-agent host \
            --code`; `--host ID` connects to an enrolled host of your company. Once connected the \
            viewer reconstructs the host's screen, byte for byte, from its updates: --snapshot \
            writes it as a PNG when the session ends and whenever the viewer gets SIGUSR1 \
            (`kill -USR1 PID`); --stats prints the frame rate, bit rate, bytes per update and \
            update latency every second. --type, --click and --clipboard send input once the \
            screen is up, and the session lasts --duration seconds (default: until the host \
            leaves or Ctrl-C, which ends it with a Bye).

            You log in to the relay with your key (below): TLS proves it without sending any \
            secret that the relay or a proxy could replay. An admin adds you once with \
            `relay-server engineer add --company ID LOGIN --public-key KEY` (`relay-agent keygen \
            --show` prints KEY). Engineers added before key login may still give their token \
            (--token-file FILE, `--token-file -` or $RELAY_TOKEN), with a warning, until an \
            admin sets their key. After pairing the customer is asked to accept (attended); \
            nothing is shown until they do, and they may allow viewing only, in which case your \
            pointer, keys and clipboard are not passed on.

            Every session is encrypted end to end: the relay forwards it but cannot read or \
            change it. Your key (engineer.key in $XDG_CONFIG_HOME/supportrelay or \
            ~/.config/supportrelay, created on first use; see `relay-agent keygen`) logs you in \
            and signs your --name for the customer. Attended: read the six-digit security code to the customer, \
            whose screen shows the same one; a different code means someone is in between. \
            Enrolled hosts: the host's key is pinned on first use in known_hosts in the same \
            folder, and a host whose key changed is refused.
            """
    )

    @OptionGroup var relay: RelayOptions
    @Option(
        help: ArgumentHelp(
            "Legacy, for engineers added before key login: a file holding your engineer token, readable by you only (chmod 600); `-` reads it from standard input. Or set RELAY_TOKEN.",
            valueName: "FILE"))
    var tokenFile: String?
    @Option(help: ArgumentHelp("The engineer token itself: visible to every user in `ps`, for tests only (prefer --token-file).", visibility: .hidden))
    var token: String?
    @Flag(help: "Ask the relay for a support code for the customer.") var newCode = false
    @Option(help: "Connect to this enrolled host.") var host: String?
    @Option(help: ArgumentHelp("Write the host's screen to this PNG file at the end (and on SIGUSR1).", valueName: "FILE.png"))
    var snapshot: String?
    @Flag(
        help:
            "Print live figures every second: fps, kbit/s, bytes per update, and update latency (request to update, so it includes waiting for the screen to change)."
    ) var stats = false
    @Option(help: "Type this text on the host once the screen is up.") var type: String?
    @Option(help: ArgumentHelp("Click the left button at this screen position once the screen is up.", valueName: "X,Y"))
    var click: String?
    @Option(help: "Put this text on the host's clipboard once connected.") var clipboard: String?
    @Option(help: "End the session after this many seconds.") var duration: Double?
    @Option(help: ArgumentHelp("The name your key signs for the customer to see (default: your user name).", valueName: "NAME"))
    var name: String?
    @Option(
        help: ArgumentHelp("Your key, for the relay login and end to end (default: engineer.key in the config folder, created if missing).", valueName: "FILE"))
    var keyFile: String?

    func validate() throws {
        if self.token != nil, self.tokenFile != nil { throw ValidationError("give --token or --token-file, not both") }
        guard self.newCode != (self.host != nil) else {
            throw ValidationError("give --new-code (a support code for a customer) or --host ID (an enrolled host)")
        }
        if let duration, !(duration > 0) { throw ValidationError("--duration must be a positive number of seconds") }
        if self.click != nil, self.clickPosition == nil {
            throw ValidationError("--click must be two whole numbers X,Y within the screen, e.g. 640,360")
        }
        if let snapshot {
            let folder = (snapshot as NSString).deletingLastPathComponent
            guard folder.isEmpty || FileManager.default.fileExists(atPath: folder) else {
                throw ValidationError("--snapshot: the folder \(folder) does not exist")
            }
        }
    }

    var clickPosition: (x: UInt16, y: UInt16)? {
        guard let parts = self.click?.split(separator: ",", omittingEmptySubsequences: false), parts.count == 2,
            let x = UInt16(parts[0].trimmingCharacters(in: .whitespaces)), let y = UInt16(parts[1].trimmingCharacters(in: .whitespaces))
        else { return nil }
        return (x, y)
    }

    func run() async throws {
        let address = try self.relay.address()
        // Legacy: a token given in any of its ways; otherwise the key logs in.
        let token: String? =
            SecretInput.engineerToken.isGiven(flagValue: self.token, file: self.tokenFile, environment: ProcessInfo.processInfo.environment)
            ? try SecretInput.engineerToken.value(flagValue: self.token, file: self.tokenFile) : nil
        let folder = try EndToEnd.configFolder()
        // A given --key-file must exist (a typo must not make a new identity); the default one
        // is made on first use.
        let (identity, created) = try self.keyFile.map { (try IdentityKeyFile.load(at: $0), false) } ?? folder.engineerKey()
        let publicKey = KeyFingerprint.base64(identity.publicKey)
        if created {
            say("Created your key \(KeyFingerprint.of(identity.publicKey)) (\(self.keyFile ?? folder.engineerKeyPath)).")
            if token == nil { say("The relay lets you in once its admin has added this public key to your account: \(publicKey)") }
        }
        if token != nil {
            say(
                "Warning: logging in with a token, which the relay (or anyone who breaks into it, or sits in front of it with its TLS key) could replay. Ask the relay's admin to run `relay-server engineer set-key ID --public-key \(publicKey)`, then connect without the token."
            )
        }
        let stop = StopRequest(byeText: "The engineer closed the viewer.")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var received = 0
                for await number in signalStream(SIGINT, SIGTERM) {
                    received += 1
                    guard received == 1 else {
                        say("Stopped at once.")
                        Foundation.exit(128 + number)
                    }
                    say("\nStopping (\(signalName(number))): ending the session; press Ctrl-C again to quit at once.")
                    await stop.request(number)
                }
            }
            defer { group.cancelAll() }
            do {
                try await self.connect(address, token: token, identity: identity, folder: folder, stop: stop)
            } catch {
                if stop.isRequested { return say("Stopped.") }
                throw fail(error)
            }
        }
    }

    /// Connects with `token` (legacy) or, when it is nil, with `identity` as the login key.
    private func connect(_ address: RelayAddress, token: String?, identity: Curve25519.Signing.PrivateKey, folder: ConfigFolder, stop: StopRequest) async throws
    {
        try await RelayConnection.withConnection(to: address, trust: self.relay.trust, clientKey: token == nil ? identity : nil) { connection in
            guard stop.connected(connection.sender) else { return }
            defer { stop.disconnected() }
            try await connection.hello(role: .viewer)
            let request: ViewerAuth.Request = self.host.map { .connect(hostID: $0) } ?? .newSupportCode
            var paired: Paired
            var confirmSecurityCode = false
            switch try await connection.authenticate(viewer: token.map { ViewerAuth(token: $0, request: request) } ?? .key(request)) {
            case .codeIssued(let issued):
                confirmSecurityCode = issued.flags.contains(.confirmSecurityCode)
                say("Support code: \(issued.code)  (valid \(issued.validForSeconds / 60) min, single use)")
                say("Ask the customer to run: relay-agent host --relay \(address) \(self.trustHint) --code \(issued.code)")
                paired = try await connection.waitForPairing()
            case .paired(let message):
                paired = message
            default:
                throw AgentFailure(description: "the relay answered unexpectedly")
            }
            let name = PeerText.printable(paired.peerName, limit: 120)
            let organization = PeerText.printable(paired.peerOrganization, limit: 80)
            say("Connected to \(name)\(organization.isEmpty ? "" : " of \(organization)") (session \(paired.sessionID), \(paired.mode)).")
            let ownName = self.name ?? ProcessInfo.processInfo.userName
            guard
                let secure = try await EndToEnd.establish(
                    connection, role: .viewer, identity: identity, name: ownName, paired: paired, stopped: { stop.isRequested })
            else { return }
            if let hostID = self.host {
                try await EndToEnd.checkPin(secure, relay: address, hostID: hostID, folder: folder)
            }
            // Pin or code by what this viewer asked for, not by Paired's mode (the relay's word).
            say(EndToEnd.Proof(secure).lines(for: .viewer, mode: self.host == nil ? .attended : .unattended))
            if confirmSecurityCode { try await EndToEnd.confirmSecurityCode(secure) }
            let stopSession = stop.sessionStarts()
            say(paired.mode == .attended ? "Waiting for the customer to accept…" : "Waiting for the host to grant access…")
            try await self.watch(secure, mode: paired.mode, stop: stopSession)
        }
    }

    private var trustHint: String {
        if let ca = self.relay.ca { return "--ca \(ca)" }
        return "--fingerprint \(self.relay.fingerprint ?? "")"
    }

    /// Shows the host's screen until it leaves, the relay ends the session, --duration
    /// passes, or the engineer stops the viewer (`stop`).
    private func watch(_ connection: SecureTransport<RelayConnection>, mode: PairingMode, stop: AsyncStream<Void>) async throws {
        let session = ViewerScreenSession()
        let notes = WatchNotes()
        let sender = connection.sender
        let started = ContinuousClock.now
        let snapshot = self.snapshot
        var inputSent = false

        let outcome = try await withThrowingTaskGroup(of: Void.self) { group in
            defer { group.cancelAll() }
            if let duration = self.duration {
                group.addTask {
                    try await Task.sleep(for: .milliseconds(Int(duration * 1000)))
                    notes.timedOut.store(true, ordering: .relaxed)
                    try await sender.send(.bye(Bye(reason: .normal, text: "the engineer closed the viewer")))
                }
            }
            group.addTask {
                // Ctrl-C: Bye, and the relay closes the session (PROTOCOL.md §8.6).
                for await _ in stop {
                    notes.stopped.store(true, ordering: .relaxed)
                    await StopRequest.sayBye(Bye(reason: .normal, text: "The engineer closed the viewer."), on: sender, grace: .seconds(2))
                    return
                }
            }
            if self.stats {
                group.addTask {
                    while true {
                        try await Task.sleep(for: .seconds(1))
                        let now = ContinuousClock.now - started
                        say("  \(notes.statistics.withLock { $0.figures(at: now) })")
                    }
                }
            }
            if let snapshot {
                group.addTask {
                    for await _ in signalStream(SIGUSR1) {
                        if let framebuffer = notes.latest.withLock({ $0 }) {
                            Self.write(framebuffer, to: snapshot)
                        } else {
                            say("  no screen yet: the snapshot is written once the host's screen arrives")
                        }
                    }
                }
            }

            return try await session.run(on: connection) { event in
                switch event {
                case .screen(let screen):
                    say("Screen \(screen.width)×\(screen.height) \"\(PeerText.printable(screen.name, limit: 120))\"")
                case .update(_, let wireBytes, let latency, let framebuffer):
                    notes.statistics.withLock { $0.record(bytes: wireBytes, latency: latency, at: ContinuousClock.now - started) }
                    if snapshot != nil { notes.latest.withLock { $0 = framebuffer } }
                    if !inputSent {
                        inputSent = true
                        if session.access == .fullControl {
                            try await self.sendScriptedInput(sender, screen: framebuffer)
                        } else if self.type != nil || self.click != nil {
                            say("Not sending --type/--click: the customer allowed viewing only.")
                        }
                    }
                case .clipboard(let text):
                    say("  clipboard from the host: \(PeerText.printable(text, limit: 200))")
                case .accessGranted(let access):
                    let who = mode == .attended ? "The customer accepted" : "The host granted access"
                    switch access {
                    case .fullControl:
                        say("\(who): you may view and control the screen.")
                        if let text = self.clipboard {
                            try await sender.send(.clipboard(Clipboard(text: text)))
                        }
                    case .viewOnly:
                        say("\(who): view only (your pointer, keys and clipboard are not passed on).")
                    }
                }
                return .continue
            }
        }

        if let snapshot, let framebuffer = session.framebuffer {
            Self.write(framebuffer, to: snapshot)
        }
        let totals = notes.statistics.withLock { ($0.totalUpdates, $0.totalBytes) }
        let seconds = Double((ContinuousClock.now - started).components.seconds)
        say(
            "Received \(totals.0) screen updates, \(totals.1) bytes\(seconds > 0 ? String(format: " (%.1f kbit/s)", Double(totals.1) * 8 / 1000 / seconds) : "")."
        )
        switch outcome {
        case .stopped: say("Session ended by the viewer.")
        case .bye(let bye) where bye.reason == .declined:
            say("\(self.host == nil ? "The customer declined the session" : "The host refused you"): \(PeerText.printable(bye.text))")
        case .bye(let bye) where session.access == nil && bye.reason == .peerLeft:
            say("Session ended before the customer accepted: \(PeerText.printable(bye.text))")
        case .bye(let bye): say("Session ended: \(PeerText.printable(bye.text))")
        case .closed where notes.timedOut.load(ordering: .relaxed): say("Session ended after \(self.duration.map { String(format: "%g", $0) } ?? "") s.")
        case .closed where notes.stopped.load(ordering: .relaxed): say("Session ended by the viewer.")
        case .closed: say("Session ended: the relay closed the connection.")
        }
    }

    private func sendScriptedInput(_ sender: some FrameSender, screen: Framebuffer) async throws {
        var frames: [Frame] = []
        var sent: [String] = []
        if let (x, y) = self.clickPosition {
            let position = (x: min(x, UInt16(screen.width - 1)), y: min(y, UInt16(screen.height - 1)))
            frames.append(try Frame(.pointer(Pointer(x: position.x, y: position.y))))
            frames.append(try Frame(.pointer(Pointer(x: position.x, y: position.y, buttons: .left))))
            frames.append(try Frame(.pointer(Pointer(x: position.x, y: position.y))))
            sent.append("a click at \(position.x),\(position.y)")
        }
        if let text = self.type {
            for scalar in text.unicodeScalars {
                guard let keysym = Keysym.forScalar(scalar) else { continue }
                frames.append(try Frame(.key(Key(keysym: keysym, isDown: true))))
                frames.append(try Frame(.key(Key(keysym: keysym, isDown: false))))
            }
            sent.append("\(text.count) typed characters")
        }
        if !frames.isEmpty {
            try await sender.send(frames: frames)
            say("Sent \(sent.joined(separator: " and ")).")
        }
    }

    static func write(_ framebuffer: Framebuffer, to path: String) {
        do {
            try PNGFile.write(framebuffer, to: path)
            say("Snapshot: \(path) (\(framebuffer.width)×\(framebuffer.height))")
        } catch {
            say("Could not write the snapshot: \(error)")
        }
    }

}

/// What the viewer's tasks note while it watches: figures for `--stats`, the latest
/// screen for `--snapshot`, and why the session is ending.
private final class WatchNotes: Sendable {
    let statistics = Mutex(ScreenStatistics())
    let latest = Mutex<Framebuffer?>(nil)
    /// `--duration` passed and the viewer said Bye.
    let timedOut = Atomic(false)
    /// The engineer stopped the viewer (Ctrl-C) and it said Bye.
    let stopped = Atomic(false)
}
