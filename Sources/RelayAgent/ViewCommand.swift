import ArgumentParser
import Foundation
import RelayClient
import RelayScreen
import RelayWire


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
            leaves or Ctrl-C).
            """
    )

    @OptionGroup var relay: RelayOptions
    @Option(help: "Your engineer token, from `relay-server engineer add`.") var token: String
    @Flag(help: "Ask the relay for a support code for the customer.") var newCode = false
    @Option(help: "Connect to this enrolled host.") var host: String?
    @Option(help: ArgumentHelp("Write the host's screen to this PNG file at the end (and on SIGUSR1).", valueName: "FILE.png"))
    var snapshot: String?
    @Flag(help: "Print live figures every second: fps, kbit/s, bytes per update, and update latency (request to update, so it includes waiting for the screen to change).") var stats = false
    @Option(help: "Type this text on the host once the screen is up.") var type: String?
    @Option(help: ArgumentHelp("Click the left button at this screen position once the screen is up.", valueName: "X,Y"))
    var click: String?
    @Option(help: "Put this text on the host's clipboard once connected.") var clipboard: String?
    @Option(help: "End the session after this many seconds.") var duration: Double?

    func validate() throws {
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
                if let text = self.clipboard {
                    try await connection.send(.clipboard(Clipboard(text: text)))
                }
                try await self.watch(connection)
            }
        } catch {
            throw fail(error)
        }
    }

    private var trustHint: String {
        if let ca = self.relay.ca { return "--ca \(ca)" }
        return "--fingerprint \(self.relay.fingerprint ?? "")"
    }

    /// Shows the host's screen until it leaves, the relay ends the session, or --duration passes.
    private func watch(_ connection: RelayConnection) async throws {
        let session = ViewerScreenSession()
        let statistics = Locked(ScreenStatistics())
        let latest = Locked<Framebuffer?>(nil)
        let timedOut = Locked(false)
        let sender = connection.sender
        let started = ContinuousClock.now
        let snapshot = self.snapshot
        var inputSent = false

        let outcome = try await withThrowingTaskGroup(of: Void.self) { group in
            defer { group.cancelAll() }
            if let duration = self.duration {
                group.addTask {
                    try await Task.sleep(for: .milliseconds(Int(duration * 1000)))
                    timedOut.withLock { $0 = true }
                    try await sender.send(.bye(Bye(reason: .normal, text: "the engineer closed the viewer")))
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
            if self.stats {
                group.addTask {
                    while true {
                        try await Task.sleep(for: .seconds(1))
                        let now = ContinuousClock.now - started
                        say("  \(statistics.withLock { $0.figures(at: now) })")
                    }
                }
            }
            if let snapshot {
                group.addTask {
                    for await _ in Self.signals(SIGUSR1) {
                        if let framebuffer = latest.withLock({ $0 }) {
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
                    say("Screen \(screen.width)×\(screen.height) \"\(screen.name)\"")
                case .update(_, let wireBytes, let latency, let framebuffer):
                    statistics.withLock { $0.record(bytes: wireBytes, latency: latency, at: ContinuousClock.now - started) }
                    if snapshot != nil { latest.withLock { $0 = framebuffer } }
                    if !inputSent {
                        inputSent = true
                        try await self.sendScriptedInput(sender, screen: framebuffer)
                    }
                case .clipboard(let text):
                    say("  clipboard from the host: \(text)")
                }
                return .continue
            }
        }

        if let snapshot, let framebuffer = session.framebuffer {
            Self.write(framebuffer, to: snapshot)
        }
        let totals = statistics.withLock { ($0.totalUpdates, $0.totalBytes) }
        let seconds = Double((ContinuousClock.now - started).components.seconds)
        say("Received \(totals.0) screen updates, \(totals.1) bytes\(seconds > 0 ? String(format: " (%.1f kbit/s)", Double(totals.1) * 8 / 1000 / seconds) : "").")
        switch outcome {
        case .stopped: say("Session ended by the viewer.")
        case .bye(let bye): say("Session ended: \(bye.text)")
        case .closed where timedOut.withLock({ $0 }): say("Session ended after \(self.duration.map { String(format: "%g", $0) } ?? "") s.")
        case .closed: say("Session ended: the relay closed the connection.")
        }
    }

    private func sendScriptedInput(_ sender: RelaySender, screen: Framebuffer) async throws {
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

    /// The deliveries of a signal, as an async sequence.
    static func signals(_ number: Int32) -> AsyncStream<Void> {
        signal(number, SIG_IGN)
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let source = SignalSource(DispatchSource.makeSignalSource(signal: number))
        source.dispatch.setEventHandler { continuation.yield() }
        continuation.onTermination = { _ in source.dispatch.cancel() }
        source.dispatch.resume()
        return stream
    }
}

/// A dispatch signal source; Dispatch serialises its handlers and cancel is thread-safe.
private struct SignalSource: @unchecked Sendable {
    let dispatch: any DispatchSourceSignal
    init(_ dispatch: any DispatchSourceSignal) { self.dispatch = dispatch }
}
