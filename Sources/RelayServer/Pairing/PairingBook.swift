import NIOCore
import RelayWire

/// Who is waiting to be paired: viewers holding support codes, and registered hosts
/// (DESIGN.md "Pairing"). Pure value type; the relay keeps one behind a lock.
///
/// `Viewer` and `Host` are the relay's connection handles; they are compared by identity.
struct PairingBook<Viewer: AnyObject & Sendable, Host: AnyObject & Sendable>: Sendable {
    struct Policy: Sendable {
        /// How long an issued code stays valid unused.
        var codeValidity = TimeAmount.minutes(10)
        /// Failed redemptions a code survives; see ``redeem(_:now:)``.
        var codeFailureLimit = 10
    }

    struct IssuedCode: Sendable {
        let code: SupportCode
        let viewer: Viewer
        let companyID: String
        let expiresAt: NIODeadline
        var failuresSeen = 0
    }

    struct Registration: Sendable {
        let host: Host
        let companyID: String
        var isBusy = false
    }

    enum Redemption: Sendable {
        /// The code was valid: it is used up now, and this viewer waits for the host.
        case paired(IssuedCode)
        /// The code is wrong, expired or used. `withdrawn` lists codes that reached their
        /// failure limit with this attempt; their viewers must be told.
        case invalid(withdrawn: [IssuedCode])
    }

    enum Claim: Sendable {
        case claimed(Host)
        /// Not registered, or enrolled for another company: one answer for both.
        case noSuchHost
        case busy
    }

    let policy: Policy
    private(set) var codes: [UInt32: IssuedCode] = [:]
    private(set) var registrations: [String: Registration] = [:]

    init(policy: Policy = Policy()) {
        self.policy = policy
    }

    // MARK: Support codes

    /// Issues a fresh code for `viewer`, unique among live codes.
    mutating func issueCode<G: RandomNumberGenerator>(
        for viewer: Viewer,
        companyID: String,
        now: NIODeadline,
        using generator: inout G
    ) -> IssuedCode {
        var code = SupportCode.random(using: &generator)
        while self.codes[code.value] != nil {
            code = SupportCode.random(using: &generator)
        }
        let issued = IssuedCode(code: code, viewer: viewer, companyID: companyID, expiresAt: now + self.policy.codeValidity)
        self.codes[code.value] = issued
        return issued
    }

    /// Redeems a code a host presented.
    ///
    /// A failed attempt cannot be attributed to the code the guesser was aiming at, so it
    /// counts against every live code: a code is withdrawn after `codeFailureLimit` failed
    /// attempts during its life. However many addresses a guesser uses, each code faces at
    /// most that many guesses out of a million, so the chance of hitting any one code stays
    /// below limit / 1,000,000 (OPERATIONS.md "Abuse resistance").
    mutating func redeem(_ code: SupportCode, now: NIODeadline) -> Redemption {
        if let issued = self.codes[code.value], issued.expiresAt > now {
            self.codes[code.value] = nil
            return .paired(issued)
        }
        var withdrawn: [IssuedCode] = []
        for (value, var issued) in self.codes {
            issued.failuresSeen += 1
            if issued.failuresSeen >= self.policy.codeFailureLimit {
                self.codes[value] = nil
                withdrawn.append(issued)
            } else {
                self.codes[value] = issued
            }
        }
        return .invalid(withdrawn: withdrawn)
    }

    /// Removes the code a viewer holds (the viewer left before its host came).
    mutating func withdrawCode(of viewer: Viewer) {
        self.codes = self.codes.filter { $0.value.viewer !== viewer }
    }

    /// Removes and returns codes whose validity has run out.
    mutating func expireCodes(now: NIODeadline) -> [IssuedCode] {
        let expired = self.codes.values.filter { $0.expiresAt <= now }
        for issued in expired { self.codes[issued.code.value] = nil }
        return expired
    }

    // MARK: Enrolled hosts

    /// Registers an authenticated host; returns the registration it replaces, if any (an
    /// older connection of the same host, which should be closed).
    mutating func register(_ host: Host, hostID: String, companyID: String) -> Host? {
        let previous = self.registrations[hostID]?.host
        self.registrations[hostID] = Registration(host: host, companyID: companyID)
        return previous === host ? nil : previous
    }

    /// Removes a host's registration if it is still this connection's.
    mutating func unregister(_ host: Host, hostID: String) {
        if self.registrations[hostID]?.host === host {
            self.registrations[hostID] = nil
        }
    }

    /// Claims a registered host for a viewer of `companyID`.
    mutating func claim(hostID: String, companyID: String) -> Claim {
        guard var registration = self.registrations[hostID], registration.companyID == companyID else {
            return .noSuchHost
        }
        guard !registration.isBusy else { return .busy }
        registration.isBusy = true
        self.registrations[hostID] = registration
        return .claimed(registration.host)
    }
}
