import RelayStore
import RelayWire
import Testing

@testable import RelayServer

/// How the relay names a pairing and a Bye in the usage history (Usage/UsageRecorder.swift):
/// the wire's vocabulary (PROTOCOL.md §6.2) mapped onto the store's closed sets, which
/// RelayStoreTests' StoreErrorModelTests checks on their own.
@Suite struct UsageVocabularyTests {
    /// The usage history names a session's end by its Bye reason (PROTOCOL.md §6.2): every
    /// reason this version knows has its own case, and a newer agent's reason is kept.
    @Test func everyByeReasonHasItsOwnEndReason() {
        for reason in ByeReason.known {
            let stored = UsageRecord.EndReason(reason)
            #expect(stored.rawValue == reason.name)
            if case .other = stored { Issue.record("ByeReason \(reason.name) has no UsageRecord.EndReason case") }
        }
        #expect(UsageRecord.EndReason(ByeReason(rawValue: 42)) == .other("unknown_42"))
        #expect(UsageRecord.Mode(PairingMode.attended) == .attended)
        #expect(UsageRecord.Mode(PairingMode.unattended) == .unattended)
    }
}
