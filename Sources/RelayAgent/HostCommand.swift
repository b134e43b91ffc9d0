import ArgumentParser
import Foundation
import RelayClient
import RelayScreen
import RelayWire

struct HostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host",
        abstract: "Share this PC's screen: join an engineer by support code, or stay registered as an enrolled host.",
        discussion: """
            Attended: `relay-agent host --relay R --fingerprint FP --code 123456` with the code the \
            engineer read out; one session, then it exits. Unattended: `--host-id ID --secret S` \
            from `relay-server host enroll`; the agent stays registered, reconnecting with back-off, \
            and serves one engineer at a time until stopped (Ctrl-C).

            The screen comes from --source: the X display in $DISPLAY by default (`x11`), another \
            display (`x11::1`), a folder of PNG frames (`replay:DIR`), or a generated scene \
            (`synthetic:scrolling-text`); `--source help` lists them. The engineer's pointer and \
            keys are injected into an X display; updates go out only when the viewer asks, at \
            most --fps a second.
            """
    )

    @OptionGroup var relay: RelayOptions
    @Option(help: "The six-digit support code the engineer gave you.") var code: String?
    @Option(help: "This host's id, from `relay-server host enroll`.") var hostID: String?
    @Option(help: "This host's secret, from `relay-server host enroll`.") var secret: String?
    @Flag(help: "Enrolled hosts: exit after one session instead of registering again.") var once = false
    @Option(help: ArgumentHelp("What to share: x11[:DISPLAY], replay:DIR, synthetic:NAME; `help` lists them. Default: x11 on $DISPLAY.", valueName: "SRC"))
    var source: String?
    @Option(help: "The most screen captures per second while the engineer waits for an update.") var fps: Double = 15
    @Flag(help: "replay: start again after the last frame instead of holding it.") var loop = false
    @Option(help: "Put this text on the engineer's clipboard once connected.") var clipboard: String?
    @Option(help: ArgumentHelp("Attended: the name the engineer sees for this PC (default: its hostname).", valueName: "NAME"))
    var name: String?

    /// What an attended session tells the engineer this PC is called (the relay adds the
    /// address it sees, and shortens a long name).
    var machineName: String {
        self.name ?? ProcessInfo.processInfo.hostName
    }

    func validate() throws {
        if self.source == "help" { return }
        if let name {
            guard self.code != nil else { throw ValidationError("--name is for attended sessions (--code); an enrolled host's name is set at `relay-server host enroll`") }
            guard !name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, name.utf8.count <= 256 else {
                throw ValidationError("--name must be 1 to 256 bytes of text, e.g. --name \"Accounts desk 3\"")
            }
        }
        switch (self.code, self.hostID, self.secret) {
        case (let code?, nil, nil):
            guard SupportCode(code) != nil else { throw ValidationError("--code must be six digits, e.g. 123456") }
        case (nil, .some, .some):
            break
        case (nil, .some, nil), (nil, nil, .some):
            throw ValidationError("--host-id and --secret go together")
        case (nil, nil, nil):
            throw ValidationError("give --code (attended) or --host-id and --secret (enrolled host)")
        default:
            throw ValidationError("give either --code or --host-id/--secret, not both")
        }
        guard self.fps > 0, self.fps <= 120 else { throw ValidationError("--fps must be between 0 and 120, e.g. 15") }
        _ = try self.specification()
    }

    func specification() throws -> ScreenSourceSpecification {
        do {
            if let source { return try ScreenSourceSpecification(parsing: source) }
            guard ProcessInfo.processInfo.environment["DISPLAY"].map({ !$0.isEmpty }) == true else {
                throw ValidationError("there is no X display to share ($DISPLAY is not set): run on the desktop, or pick one with --source (`--source help` lists them)")
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
        let screen: any ScreenSource
        do {
            screen = try self.specification().open(fps: self.fps, loop: self.loop)
        } catch {
            throw AgentFailure(description: "\(error)")
        }
        let address = try self.relay.address()
        if let code = self.code.flatMap(SupportCode.init) {
            do {
                try await self.session(address: address, auth: .namedSupportCode(code, machineName: self.machineName), screen: screen)
            } catch {
                throw fail(error)
            }
            return
        }
        try await self.keepRegistration(address: address, auth: .enrolled(hostID: self.hostID!, secret: self.secret!), screen: screen)
    }

    /// Unattended: register, serve a session, register again; back off on failures.
    private func keepRegistration(address: RelayAddress, auth: HostAuth, screen: any ScreenSource) async throws {
        var backoff = RegistrationBackoff()
        while !Task.isCancelled {
            do {
                try await self.session(address: address, auth: auth, screen: screen)
                backoff.reset()
                if self.once { return }
            } catch let error as RelayClientError where error.code == .authenticationFailed || error.kind == .configuration || error.kind == .tls {
                // Retrying cannot fix these: the secret, the trust settings or the relay are wrong.
                throw fail(error)
            } catch {
                if self.once { throw fail(error) }
                let delay = backoff.next()
                say("\(fail(error).description)\nRetrying in \(String(format: "%.1f", delay.seconds)) s.")
                try await Task.sleep(for: delay.duration)
            }
        }
    }

    private func session(address: RelayAddress, auth: HostAuth, screen: any ScreenSource) async throws {
        try await RelayConnection.withConnection(to: address, trust: self.relay.trust) { connection in
            try await connection.hello(role: .host)
            let paired: Paired
            switch try await connection.authenticate(host: auth) {
            case .paired(let message):
                paired = message
            case .hostRegistered(let registration):
                say("Registered with the relay as \"\(registration.hostName)\"; waiting for an engineer.")
                paired = try await connection.waitForPairing()
            default:
                throw AgentFailure(description: "the relay answered unexpectedly")
            }
            say("Engineer \(paired.peerName) is connected (session \(paired.sessionID), \(paired.mode)); sharing \(screen.name).")
            let session = HostScreenSession(source: screen, options: .init(framesPerSecond: self.fps, clipboard: self.clipboard))
            let outcome = try await session.run(on: connection) { event in
                switch event {
                case .screen(let width, let height): say("  screen \(width)×\(height)")
                case .clipboard(let text): say("  clipboard from the engineer: \(text)")
                case .inputFailed(let reason): say("  could not inject input: \(reason)")
                }
            }
            switch outcome {
            case .bye(let bye): say("Session ended: \(bye.text)")
            case .closed: say("Session ended: the relay closed the connection.")
            }
        }
    }
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
