public import Foundation

// Transitional API (issue 11, item 5): what lets code that still spells store errors and
// record values as strings compile while it moves to the kinds and enums. Nothing in
// RelayStore uses it. Delete this file once these callers have moved:
//
// - RelayServer/RelayNode.swift: `StoreError("cannot listen on …")` (becomes a
//   ConfigurationError) and `closeInterruptedSessions(reason: ByeReason.relayRestart.name)`
//   (becomes `reason: .relayRestart`);
// - RelayServer/Relay.swift: `logAccess(_ event: String, …)` (takes an `AccessEvent.Kind`);
// - tests outside the store's own that compare or build records with string literals
//   (`endReason == "normal"`, `action == "restart_recovery"`, `reason: "normal"`).

extension StoreError {
    /// A store error with only a message, of kind ``Kind/unavailable``. Transitional:
    /// give the kind (`StoreError(.unavailable, "…")`).
    public init(_ message: String) {
        self.init(.unavailable, message)
    }
}

extension AccessEvent {
    /// An access-log entry whose event is given by its column text. Transitional: pass an
    /// ``AccessEvent/Kind``.
    public init(
        id: Int64? = nil, at: Date, event: String, outcome: Outcome, sourceAddress: String, companyID: String? = nil, subject: String? = nil,
        detail: String? = nil
    ) {
        self.init(
            id: id, at: at, event: Kind(rawValue: event), outcome: outcome, sourceAddress: sourceAddress, companyID: companyID, subject: subject,
            detail: detail
        )
    }
}

extension UsageStore {
    /// ``closeInterruptedSessions(relayNode:reason:actor:)`` with the reason's column text.
    /// Transitional: pass a ``UsageRecord/EndReason``.
    public func closeInterruptedSessions(relayNode: String?, reason: String, actor: String) throws -> Int {
        try self.closeInterruptedSessions(relayNode: relayNode, reason: UsageRecord.EndReason(rawValue: reason), actor: actor)
    }
}

// Transitional: a string literal reads as its column text, so `record.endReason == "normal"`
// still compiles. New code names the case (`.normal`).
extension UsageRecord.Mode: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(rawValue: value) }
}

extension UsageRecord.EndReason: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(rawValue: value) }
}

extension AccessEvent.Kind: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(rawValue: value) }
}

extension AuditEntry.Action: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(rawValue: value) }
}
