import NIOCore
import NIOPosix
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

// Helpers for the in-memory tests of the timing-bound behaviour (deadlines, code expiry,
// revocation, backpressure, frame boundaries): they add to InMemoryRelay's test API and
// change nothing of it.

extension RelayMetrics {
    /// The value of one sample in the Prometheus exposition, e.g. `relay_frames_padded_total`
    /// or `relay_bytes_relayed_total{direction="to_viewer"}`; NaN when absent.
    func value(_ name: String) -> Double {
        let text = String(decoding: self.exposition(), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last!) ?? .nan
        }
        return .nan
    }
}

extension InMemoryRelay {
    func metric(_ name: String) -> Double {
        self.relay.metrics.value(name)
    }

    /// Runs what the handlers queued for one another at the current virtual time (a
    /// handler that delivers to another connection on the same loop queues a task; reading
    /// the other side's output with `writtenFrames()` does not run it).
    func settle() async {
        await self.loop.run()
    }

    /// Waits until the background pool has done what was queued on it before (access-log
    /// batches), then writes what is left: the access log is then complete, without polling.
    func settleAccessLog() async throws {
        // One thread, first in first out: when this job has run, every earlier one has.
        try await self.relay.backgroundPool.runIfActive {}
        self.relay.flushAccessLog()
    }

    /// A new connection that has sent Hello and read HelloAck.
    func greeted(_ role: Role, from address: String) async throws -> InMemoryAgent {
        let agent = try await self.connect(from: address)
        try await agent.send(.hello(Hello(role: role, capabilities: .all, software: "memory-\(role)")))
        let answer = try await agent.onlyMessage()
        guard case .helloAck = answer else { throw TestFailure("\(role) at \(address): expected HelloAck, got \(answer)") }
        return agent
    }

    /// ACME's engineer, connected from `address`, holding a fresh support code (§8.3, attended).
    func viewerWithCode(from address: String = "198.51.100.30") async throws -> (viewer: InMemoryAgent, code: SupportCode) {
        let viewer = try await self.greeted(.viewer, from: address)
        try await viewer.send(.viewerAuth(ViewerAuth(token: self.acme.engineerToken, request: .newSupportCode)))
        let answer = try await viewer.nextMessage()
        guard case .codeIssued(let issued) = answer else { throw TestFailure("expected CodeIssued, got \(answer)") }
        return (viewer, issued.code)
    }

    /// A host at `address` presenting `code`; returns the connection and the relay's answer
    /// (a code is checked at once, not on the thread pool).
    func presentCode(_ code: SupportCode, from address: String) async throws -> (host: InMemoryAgent, answer: RelayMessage) {
        let host = try await self.greeted(.host, from: address)
        try await host.send(.hostAuth(.supportCode(code)))
        return (host, try await host.onlyMessage())
    }
}

extension InMemoryAgent {
    /// Every whole frame the relay has written by now, once the loop has run what the
    /// handlers queued for one another. Nothing else moves an in-memory relay, so what is
    /// not here has not been sent: a missing answer fails the test at once instead of
    /// hanging it. (Answers that wait for the thread pool: ``nextMessage()``.)
    func settledFrames() async throws -> [(type: UInt8, payload: ByteBuffer)] {
        await self.loop.run()
        return try await self.writtenFrames()
    }

    func settledMessages() async throws -> [RelayMessage] {
        let frames = try await self.settledFrames()
        return try frames.map(Self.decode)
    }

    /// The one message the relay has written by now (see ``settledFrames()``).
    func onlyMessage(sourceLocation: SourceLocation = #_sourceLocation) async throws -> RelayMessage {
        let messages = try await self.settledMessages()
        guard messages.count == 1 else {
            Issue.record("expected one message from the relay, got \(messages)", sourceLocation: sourceLocation)
            throw TestFailure("expected one message from the relay, got \(messages.count)")
        }
        return messages[0]
    }

    /// True when the relay has closed this connection and written nothing more.
    func closedWithNothingMore() async throws -> Bool {
        try await self.settledFrames().isEmpty && self.unfinishedBytes == 0 && !self.isOpen
    }

    /// Error(`code`) as the last thing the relay wrote, and the connection closed after it.
    @discardableResult
    func expectError(_ code: ErrorCode, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> ErrorMessage? {
        let messages = try await self.settledMessages()
        guard messages.count == 1, case .error(let error) = messages[0] else {
            Issue.record("\(what): expected Error(\(code)) and nothing else, got \(messages)", sourceLocation: sourceLocation)
            return nil
        }
        #expect(error.code == code, "\(what): got Error(\(error.code)) \(error.message)", sourceLocation: sourceLocation)
        #expect(self.unfinishedBytes == 0 && !self.isOpen, "\(what): the relay must close right after Error", sourceLocation: sourceLocation)
        return error
    }

    /// Bye(`reason`) as the last thing the relay wrote, and the connection closed after it.
    @discardableResult
    func expectBye(_ reason: ByeReason, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Bye? {
        let messages = try await self.settledMessages()
        guard messages.count == 1, case .bye(let bye) = messages[0] else {
            Issue.record("\(what): expected Bye(\(reason)) and nothing else, got \(messages)", sourceLocation: sourceLocation)
            return nil
        }
        #expect(bye.reason == reason, "\(what): got Bye(\(bye.reason)) \(bye.text)", sourceLocation: sourceLocation)
        #expect(self.unfinishedBytes == 0 && !self.isOpen, "\(what): the relay must close right after Bye", sourceLocation: sourceLocation)
        return bye
    }
}
