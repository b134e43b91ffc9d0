import NIOCore
import Testing

@testable import RelayServer

/// The handshake deadline and idle timeout as a pure value, on virtual time.
@Suite struct ConnectionDeadlinesTests {
    let opened = NIODeadline.uptimeNanoseconds(5_000_000_000)

    func deadlines() -> ConnectionDeadlines {
        ConnectionDeadlines(handshakeTimeout: .seconds(10), idleTimeout: .seconds(120), openedAt: self.opened)
    }

    @Test func theHandshakeDeadlineComesFirstAndEndsWithAuthentication() {
        var deadlines = self.deadlines()
        #expect(deadlines.next == self.opened + .seconds(10))
        #expect(deadlines.expired(at: self.opened + .seconds(10) - .nanoseconds(1)) == nil)
        #expect(deadlines.expired(at: self.opened + .seconds(10)) == .handshake)
        deadlines.authenticated()
        #expect(deadlines.expired(at: self.opened + .seconds(10)) == nil)
        #expect(deadlines.next == self.opened + .seconds(120))
    }

    @Test func readsPushTheIdleDeadline() {
        var deadlines = self.deadlines()
        deadlines.authenticated()
        deadlines.read(at: self.opened + .seconds(100))
        #expect(deadlines.expired(at: self.opened + .seconds(120)) == nil)
        #expect(deadlines.next == self.opened + .seconds(220))
        #expect(deadlines.expired(at: self.opened + .seconds(220)) == .idle)
    }

    /// OPERATIONS.md §6: a connection the relay stopped reading is not idle, however long.
    @Test func noIdleWhileTheRelayDoesNotRead() {
        var deadlines = self.deadlines()
        deadlines.authenticated()
        deadlines.pausedReading()
        #expect(deadlines.next == nil)
        #expect(deadlines.expired(at: self.opened + .hours(5)) == nil)
        deadlines.resumedReading(at: self.opened + .hours(5))
        #expect(deadlines.expired(at: self.opened + .hours(5) + .seconds(119)) == nil)
        #expect(deadlines.expired(at: self.opened + .hours(5) + .seconds(120)) == .idle)
    }

    /// The handshake deadline applies even while reading is paused (it cannot be, before
    /// pairing; the value does not rely on that).
    @Test func theHandshakeDeadlineIgnoresAPause() {
        var deadlines = self.deadlines()
        deadlines.pausedReading()
        #expect(deadlines.next == self.opened + .seconds(10))
        #expect(deadlines.expired(at: self.opened + .seconds(10)) == .handshake)
    }
}
