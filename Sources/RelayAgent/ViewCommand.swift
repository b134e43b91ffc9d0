import ArgumentParser
import Foundation
import RelayClient
import RelayWire

struct ViewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "view",
        abstract: "Reach a PC: ask for a support code for a customer, or connect to an enrolled host.",
        discussion: """
            `--new-code` prints a six-digit code for the customer to enter in `relay-agent host \
            --code`; `--host ID` connects to an enrolled host of your company. Once connected, \
            --type and --clipboard send input, and the session lasts --duration seconds (default: \
            until the host leaves or Ctrl-C). This version carries input and clipboard; screen \
            sharing comes with the screen-streaming release.
            """
    )

    @OptionGroup var relay: RelayOptions
    @Option(help: "Your engineer token, from `relay-server engineer add`.") var token: String
    @Flag(help: "Ask the relay for a support code for the customer.") var newCode = false
    @Option(help: "Connect to this enrolled host.") var host: String?
    @Option(help: "Type this text on the host once connected.") var type: String?
    @Option(help: "Put this text on the host's clipboard once connected.") var clipboard: String?
    @Option(help: "End the session after this many seconds.") var duration: Double?

    func validate() throws {
        guard self.newCode != (self.host != nil) else {
            throw ValidationError("give --new-code (a support code for a customer) or --host ID (an enrolled host)")
        }
        if let duration, !(duration > 0) { throw ValidationError("--duration must be a positive number of seconds") }
    }

    func run() async throws {
        let address = try self.relay.address()
        do {
            try await RelayConnection.withConnection(to: address, trust: self.relay.trust) { connection in
                try await connection.hello(role: .viewer)
                let request: ViewerAuth.Request = self.host.map { .connect(hostID: $0) } ?? .newSupportCode
                var paired: Paired
                switch try await connection.authenticate(viewer: ViewerAuth(token: self.token, request: request)) {
                case .codeIssued(let issued):
                    say("Support code: \(issued.code)  (valid \(issued.validForSeconds / 60) min, single use)")
                    say("Ask the customer to run: relay-agent host --relay \(address) \(self.trustHint) --code \(issued.code)")
                    paired = try await connection.waitForPairing()
                case .paired(let message):
                    paired = message
                default:
                    throw AgentFailure(description: "the relay answered unexpectedly")
                }
                say("Connected to \(paired.peerName) (session \(paired.sessionID), \(paired.mode)).")
                try await self.sendScriptedInput(connection)
                try await self.runSession(connection)
            }
        } catch {
            throw fail(error)
        }
    }

    private var trustHint: String {
        if let ca = self.relay.ca { return "--ca \(ca)" }
        return "--fingerprint \(self.relay.fingerprint ?? "")"
    }

    private func sendScriptedInput(_ connection: RelayConnection) async throws {
        var frames: [Frame] = []
        if let text = self.type {
            for scalar in text.unicodeScalars {
                guard let keysym = Keysym.forScalar(scalar) else { continue }
                frames.append(try Frame(.key(Key(keysym: keysym, isDown: true))))
                frames.append(try Frame(.key(Key(keysym: keysym, isDown: false))))
            }
        }
        if let text = self.clipboard {
            frames.append(try Frame(.clipboard(Clipboard(text: text))))
        }
        if !frames.isEmpty {
            try await connection.send(frames: frames)
            say("Sent \(self.type.map { "\($0.count) typed characters" } ?? "")\(self.type != nil && self.clipboard != nil ? " and " : "")\(self.clipboard != nil ? "clipboard text" : "").")
        }
    }

    /// Prints what the host sends until it leaves, or until --duration passes.
    private func runSession(_ connection: RelayConnection) async throws {
        let sender = connection.sender
        try await withThrowingTaskGroup(of: Void.self) { group in
            if let duration = self.duration {
                group.addTask {
                    try await Task.sleep(for: .milliseconds(Int(duration * 1000)))
                    try await sender.send(.bye(Bye(reason: .normal, text: "the viewer was closed")))
                }
            }
            group.addTask {
                var nonce: UInt64 = 0
                while true {
                    try await Task.sleep(for: .seconds(30))
                    nonce &+= 1
                    try await sender.send(.ping(Ping(nonce: nonce)))
                }
            }
            defer { group.cancelAll() }
            try await printPeerMessages(connection)
        }
    }
}
