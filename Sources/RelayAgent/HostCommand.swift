import ArgumentParser
import Foundation
import RelayClient
import RelayWire

struct HostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host",
        abstract: "Share this PC: join an engineer by support code, or stay registered as an enrolled host.",
        discussion: """
            Attended: `relay-agent host --relay R --fingerprint FP --code 123456` with the code the \
            engineer read out; one session, then it exits. Unattended: `--host-id ID --secret S` \
            from `relay-server host enroll`; the agent stays registered, reconnecting with back-off, \
            and serves one engineer at a time until stopped (Ctrl-C). This version carries input \
            and clipboard; screen sharing comes with the screen-streaming release.
            """
    )

    @OptionGroup var relay: RelayOptions
    @Option(help: "The six-digit support code the engineer gave you.") var code: String?
    @Option(help: "This host's id, from `relay-server host enroll`.") var hostID: String?
    @Option(help: "This host's secret, from `relay-server host enroll`.") var secret: String?
    @Flag(help: "Enrolled hosts: exit after one session instead of registering again.") var once = false

    func validate() throws {
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
    }

    func run() async throws {
        let address = try self.relay.address()
        if let code = self.code.flatMap(SupportCode.init) {
            do {
                try await self.session(address: address, auth: .supportCode(code))
            } catch {
                throw fail(error)
            }
            return
        }
        try await self.keepRegistration(address: address, auth: .enrolled(hostID: self.hostID!, secret: self.secret!))
    }

    /// Unattended: register, serve a session, register again; back off on failures.
    private func keepRegistration(address: RelayAddress, auth: HostAuth) async throws {
        var backoff = RegistrationBackoff()
        while !Task.isCancelled {
            do {
                try await self.session(address: address, auth: auth)
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

    private func session(address: RelayAddress, auth: HostAuth) async throws {
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
            say("Engineer \(paired.peerName) is connected (session \(paired.sessionID), \(paired.mode)).")
            try await printPeerMessages(connection)
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
