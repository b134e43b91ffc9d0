import Foundation
import NIOCore
import RelayStore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// Expired, reused and guessed codes and slow readers, in memory (InMemoryRelay): code
/// expiry is driven by handing the relay's sweep the instant the code expires, a slow
/// reader is a connection whose writes are held (WriteGate), and nothing waits on a clock.
/// What needs real sockets and TLS (connection caps before the handshake, garbage instead
/// of TLS, certificates) stays in AbuseEndToEndTests.
@Suite(.timeLimit(.minutes(1))) struct AbuseInMemoryTests {
    /// When ACME's code `code` expires, on the clock the relay issued it with.
    static func expiry(of code: SupportCode, in relay: InMemoryRelay) throws -> NIODeadline {
        try #require(relay.relay.pairing.withLockedValue { $0.codes[code.value]?.expiresAt })
    }

    @Test func codesExpireAndAreSingleUse() async throws {
        try await InMemoryRelay.with({ $0.supportCodeValidity = .seconds(600) }) { relay in
            // Expired: the waiting viewer is told, and the code no longer pairs.
            let (viewer, code) = try await relay.viewerWithCode()
            let expiresAt = try Self.expiry(of: code, in: relay)
            relay.relay.sweep(now: expiresAt - .nanoseconds(1))
            #expect(try await viewer.settledFrames().isEmpty && viewer.isOpen, "the code is valid up to its expiry")
            relay.relay.sweep(now: expiresAt)
            let expired = try await viewer.expectError(.timeout, "the viewer whose code expired")
            #expect(expired?.message.contains("expired") == true)
            let late = try await relay.presentCode(code, from: "203.0.113.1")
            guard case .error(let lateError) = late.answer else { throw TestFailure("expected Error, got \(late.answer)") }
            #expect(lateError.code == .invalidCode)

            // Used: a second host with the same code gets the same answer as a wrong code.
            let (waiting, fresh) = try await relay.viewerWithCode(from: "198.51.100.31")
            let first = try await relay.presentCode(fresh, from: "203.0.113.2")
            guard case .paired = first.answer else { throw TestFailure("expected Paired, got \(first.answer)") }
            guard case .paired = try await waiting.onlyMessage() else { throw TestFailure("the viewer: expected Paired") }
            let reused = try await relay.presentCode(fresh, from: "203.0.113.3")
            let wrong = try await relay.presentCode(SupportCode(value: (fresh.value + 1) % 1_000_000)!, from: "203.0.113.4")
            guard case .error(let reusedError) = reused.answer, case .error(let wrongError) = wrong.answer else {
                throw TestFailure("expected two Errors, got \(reused.answer) and \(wrong.answer)")
            }
            #expect(reusedError.code == .invalidCode)
            #expect(wrongError == reusedError)
        }
    }

    /// Issue 10, item 7: wrong codes once withdrew every live code. Now a guessing source
    /// is blocked, growingly, and the code it aimed at stays valid.
    @Test func aGuessingSourceIsBlockedAndLiveCodesSurvive() async throws {
        // The block runs on the wall clock (AuthThrottle); 60 s outlasts the test by far.
        try await InMemoryRelay.with({
            $0.sourcePenalties.freeFailures = 3
            $0.sourcePenalties.firstBlock = .seconds(60)
        }) { relay in
            let (viewer, code) = try await relay.viewerWithCode()
            var answers: [ErrorCode?] = []
            for guess in 1...6 {
                let wrong = SupportCode(value: (code.value + UInt32(guess)) % 1_000_000)!
                let (_, answer) = try await relay.presentCode(wrong, from: "203.0.113.66")
                if case .error(let error) = answer { answers.append(error.code) } else { answers.append(nil) }
            }
            // Three free failures, a fourth that starts the block, then refusals that are
            // not even checked against live codes.
            #expect(answers == [.invalidCode, .invalidCode, .invalidCode, .invalidCode, .rateLimited, .rateLimited])
            // Even the right code is refused from this source while the block lasts...
            let (_, right) = try await relay.presentCode(code, from: "203.0.113.66")
            guard case .error(let refused) = right else { throw TestFailure("expected Error, got \(right)") }
            #expect(refused.code == .rateLimited)
            // ...but the code lives on: the engineer still waits, with no error.
            #expect(relay.relay.pairing.withLockedValue { $0.codes[code.value] } != nil)
            #expect(try await viewer.settledFrames().isEmpty && viewer.isOpen)
            #expect(relay.metric("relay_auth_throttled_total") == 3)
            try await relay.settleAccessLog()
            #expect(try relay.store.accessLog().filter { $0.outcome == .throttled }.count == 3)
        }
    }

    /// OPERATIONS.md §6: a viewer that does not read. Past the high-water mark the relay
    /// stops asking to read the host, so what it holds for the slow reader is the mark plus
    /// at most one read; nothing is lost, and the host is read again once the viewer reads.
    @Test func aSlowReaderDoesNotMakeTheRelayBuffer() async throws {
        try await InMemoryRelay.with { relay in
            let (host, viewer) = try await relay.pairUnattended()
            try await relay.loop.submit { viewer.gate.close() }.get()
            let frame = InMemoryConnectionTests.tileUpdate(length: 64 * 1024, fill: 0xAB)
            let total = 24  // 1.5 MiB: three times the high-water mark
            var sent = 0
            // A socket delivers a read only when one is asked for: send the next 64 KiB only
            // while the relay keeps asking.
            while sent < total {
                let readsBefore = try await relay.loop.submit { host.reads.reads }.get()
                try await host.write(frame)
                sent += 1
                host.channel.read()
                if try await relay.loop.submit({ host.reads.reads }).get() == readsBefore { break }
            }
            #expect(sent < total, "the relay never stopped reading a host whose viewer does not read")
            let held = try await relay.loop.submit { viewer.gate.heldBytes }.get()
            let highWater = relay.relay.configuration.writeBufferHighWater
            #expect(held == sent * frame.readableBytes, "every byte read from the host is in flight to the viewer")
            #expect(held > highWater && held <= highWater + frame.readableBytes, "relay holds \(held) bytes for a slow reader")
            let inFlight = try #require(relay.relay.pairedSessions.first).inFlight(to: .viewer)
            #expect(inFlight == held)

            // Nothing was lost: the viewer gets everything once it reads, and the host is
            // read again.
            let readsWhilePaused = try await relay.loop.submit { host.reads.reads }.get()
            try await relay.loop.submit { viewer.gate.open() }.get()
            await relay.settle()
            #expect(try await relay.loop.submit { host.reads.reads }.get() == readsWhilePaused + 1, "the withheld read is passed on")
            while sent < total {
                try await host.write(frame)
                sent += 1
            }
            var received = 0
            for (type, payload) in try await viewer.settledFrames() {
                #expect(type == MessageType.tileUpdate.rawValue && payload.readableBytes == 64 * 1024)
                received += 1
            }
            #expect(received == total)
            #expect(host.isOpen && viewer.isOpen)
        }
    }
}
