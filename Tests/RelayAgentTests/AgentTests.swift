import Foundation
import RelayWire
import Testing

@testable import RelayAgent

@Suite struct KeysymTests {
    @Test func typedTextMapsToKeysymsAndBack() {
        let text = "Hello, 회계팀! é\n\t"
        for scalar in text.unicodeScalars {
            let keysym = Keysym.forScalar(scalar)
            #expect(keysym != nil, "no keysym for U+\(String(scalar.value, radix: 16))")
            #expect(Keysym.scalar(for: keysym!) == (scalar == "\r" ? "\n" : scalar))
        }
        #expect(Keysym.forScalar("a") == 0x61)
        #expect(Keysym.forScalar("é") == 0xE9)
        #expect(Keysym.forScalar("회") == 0x0100_D68C)
        #expect(Keysym.forScalar("\n") == Keysym.returnKey)
    }

    @Test func controlCharactersWithoutAKeyAreSkipped() {
        #expect(Keysym.forScalar("\u{0}") == nil)
        #expect(Keysym.forScalar("\u{7F}") == nil)
        #expect(Keysym.scalar(for: 0xFFBE) == nil)  // F1 types nothing
    }
}

@Suite struct RegistrationBackoffTests {
    @Test func doublesWithJitterUpToAMinuteAndResets() {
        var backoff = RegistrationBackoff()
        var steps: [Double] = []
        for _ in 0..<10 { steps.append(backoff.next().seconds) }
        let limits = [1.0, 2, 4, 8, 16, 32, 60, 60, 60, 60]
        for (delay, limit) in zip(steps, limits) {
            #expect(delay >= limit / 2 && delay <= limit)
        }
        backoff.reset()
        #expect(backoff.next().seconds <= 1)
    }
}

@Suite struct HostCommandNameTests {
    static let common = ["--relay", "relay.example.com:7443", "--fingerprint", String(repeating: "ab", count: 32), "--source", "synthetic:video"]

    @Test func attendedHostSendsItsNameOrItsHostname() throws {
        let named = try HostCommand.parse(Self.common + ["--code", "123456", "--name", "Accounts desk 3"])
        #expect(named.machineName == "Accounts desk 3")
        let unnamed = try HostCommand.parse(Self.common + ["--code", "123456"])
        #expect(unnamed.machineName == ProcessInfo.processInfo.hostName)
        #expect(!unnamed.machineName.isEmpty)
    }

    @Test func nameIsForAttendedSessionsAndNotBlank() {
        #expect(throws: (any Error).self) {
            try HostCommand.parse(Self.common + ["--host-id", "ho-1", "--secret", "s", "--name", "Desk"])
        }
        #expect(throws: (any Error).self) { try HostCommand.parse(Self.common + ["--code", "123456", "--name", "  "]) }
        #expect(throws: (any Error).self) {
            try HostCommand.parse(Self.common + ["--code", "123456", "--name", String(repeating: "x", count: 257)])
        }
    }
}
