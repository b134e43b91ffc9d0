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
        /// Live codes one engineer may hold; issuing one more withdraws their oldest.
        var maximumCodesPerEngineer = 5
        /// The relay-wide budget of failed redemptions (OPERATIONS.md "Abuse resistance").
        var guessBudget = CodeGuessBreaker.Policy()
    }

    struct IssuedCode: Sendable {
        let code: SupportCode
        let viewer: Viewer
        let companyID: String
        let expiresAt: NIODeadline
        /// The engineer who asked for it, for the per-engineer cap (nil: not capped).
        var engineerID: String? = nil
        /// Issue order: among one engineer's codes, the lowest is the oldest.
        var serial: UInt64 = 0
    }

    struct Registration: Sendable {
        let host: Host
        let companyID: String
        var isBusy = false
        /// When it registered (the cluster's directory check leaves fresh ones alone).
        var since = NIODeadline.now()
    }

    /// What became of a redemption attempt (``attemptRedemption(of:now:)``).
    enum CodeAttempt: Sendable {
        /// The code was valid: it is used up now, and this viewer waits for the host.
        case paired(IssuedCode)
        /// The code is wrong, expired or used (one answer for all three). `pausedFor` is
        /// set when this failure used up the relay-wide guess budget: redemption is now
        /// paused that long (log it once: a guessing attack is likely under way).
        case invalid(pausedFor: TimeAmount?)
        /// Redemption is paused relay-wide; the code was not checked and stays valid if
        /// it was. Answer `Error(rate_limited)` with the wait.
        case paused(retryAfter: TimeAmount)
    }

    /// A fresh code, and the engineer's oldest code it displaced, if any.
    struct Issue: Sendable {
        let issued: IssuedCode
        /// The engineer already held `maximumCodesPerEngineer` live codes: this, their
        /// oldest, is withdrawn. Tell its viewer (`Error(invalid_code)`).
        let withdrawn: IssuedCode?
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
    /// Failed redemptions relay-wide, and whether redemption is paused.
    private(set) var guesses: CodeGuessBreaker
    private var nextSerial: UInt64 = 0

    init(policy: Policy = Policy()) {
        self.policy = policy
        self.guesses = CodeGuessBreaker(policy: policy.guessBudget)
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
        self.nextSerial += 1
        let issued = IssuedCode(code: code, viewer: viewer, companyID: companyID, expiresAt: now + self.policy.codeValidity, serial: self.nextSerial)
        self.codes[code.value] = issued
        return issued
    }

    /// Issues a fresh code for `viewer` of engineer `engineerID`, unique among live codes.
    ///
    /// An engineer holds at most `maximumCodesPerEngineer` live codes: the one asked for
    /// now is the one the engineer is reading to a customer, so it wins, and the oldest
    /// is withdrawn (and returned, so that its viewer is told) rather than refusing the
    /// new one. This bounds the live codes, and so the guessing odds, by the number of
    /// engineers, whatever a client or script asks for.
    mutating func issueCode<G: RandomNumberGenerator>(
        for viewer: Viewer,
        engineerID: String,
        companyID: String,
        now: NIODeadline,
        using generator: inout G
    ) -> Issue {
        var withdrawn: IssuedCode?
        let held = self.codes.values.filter { $0.engineerID == engineerID }
        if held.count >= max(1, self.policy.maximumCodesPerEngineer), let oldest = held.min(by: { $0.serial < $1.serial }) {
            self.codes[oldest.code.value] = nil
            withdrawn = oldest
        }
        var issued = self.issueCode(for: viewer, companyID: companyID, now: now, using: &generator)
        issued.engineerID = engineerID
        self.codes[issued.code.value] = issued
        return Issue(issued: issued, withdrawn: withdrawn)
    }

    /// Redeems a code a host presented, within the relay-wide guess budget.
    ///
    /// A failed attempt cannot be attributed to the code the guesser aimed at, and
    /// charging it to every live code (as this relay once did) let anyone void every
    /// honest code with ten wrong guesses. Failures are charged to the guessing source by
    /// the caller (``AuthThrottle``) and to the relay-wide budget here: when the budget of
    /// a minute or an hour is spent, attempts are refused unchecked for a while and live
    /// codes stay valid. So at most `guessBudget.perHour` wrong codes are checked in any
    /// hour, and the chance of hitting any of N live codes in an hour is at most
    /// perHour × N / (1,000,000 − N − perHour) (OPERATIONS.md "Abuse resistance").
    mutating func attemptRedemption(of code: SupportCode, now: NIODeadline) -> CodeAttempt {
        if let wait = self.guesses.retryAfter(now: now) {
            return .paused(retryAfter: wait)
        }
        if let issued = self.codes[code.value], issued.expiresAt > now {
            self.codes[code.value] = nil
            return .paired(issued)
        }
        return .invalid(pausedFor: self.guesses.recordFailure(now: now))
    }

    /// How long redemption stays paused relay-wide, or nil when it is open.
    func redemptionPausedFor(now: NIODeadline) -> TimeAmount? {
        self.guesses.retryAfter(now: now)
    }

    /// The `Error(rate_limited)` text for a host whose code was not checked because
    /// redemption is paused.
    static func pausedMessage(retryAfter wait: TimeAmount) -> String {
        "support codes are paused on this relay after too many wrong codes from the internet; "
            + "a valid code stays valid: try again in \(RetryWait.seconds(wait)) s"
    }

    /// The `Error(invalid_code)` text for the viewer whose code the per-engineer cap withdrew.
    func withdrawnForNewerCodeMessage(_ issued: IssuedCode) -> String {
        "support code \(issued.code) was withdrawn: you asked for a newer one, and an engineer holds at most "
            + "\(self.policy.maximumCodesPerEngineer) live codes; give the customer the newest code"
    }

    /// Removes the code a viewer holds (the viewer left before its host came); returns
    /// the codes removed.
    @discardableResult
    mutating func withdrawCode(of viewer: Viewer) -> [SupportCode] {
        let withdrawn = self.codes.values.filter { $0.viewer === viewer }.map(\.code)
        for code in withdrawn { self.codes[code.value] = nil }
        return withdrawn
    }

    /// Removes a code that was issued by this node and drawn again elsewhere in the
    /// cluster at the same moment (the store refused it): the caller draws a new one.
    mutating func withdraw(_ code: SupportCode) {
        self.codes[code.value] = nil
    }

    /// Takes a live code without charging the guess budget: another node of the cluster
    /// claimed it in the shared store for a host there, and charged its failures itself.
    mutating func takeCode(_ code: SupportCode, now: NIODeadline) -> IssuedCode? {
        guard let issued = self.codes[code.value], issued.expiresAt > now else { return nil }
        self.codes[code.value] = nil
        return issued
    }

    /// Counts a wrong code that the cluster's shared budget counted (``CodeGuessBreaker``):
    /// the counts are the cluster's, in the minute and the hour up to now, this one included.
    mutating func recordWrongCode(clusterMinute: Int, clusterHour: Int, now: NIODeadline) -> TimeAmount? {
        self.guesses.recordFailure(now: now, clusterMinute: clusterMinute, clusterHour: clusterHour)
    }

    /// Removes and returns codes whose validity has run out, and forgets failed
    /// redemptions older than an hour (run every second or so).
    mutating func expireCodes(now: NIODeadline) -> [IssuedCode] {
        self.guesses.prune(now: now)
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

    /// Whether the host `hostID` of `companyID` is in a session (true) or waits for one
    /// (false); nil when it is not connected.
    func isBusy(hostID: String, companyID: String) -> Bool? {
        guard let registration = self.registrations[hostID], registration.companyID == companyID else { return nil }
        return registration.isBusy
    }

    /// Whether any connection of `hostID` is registered here.
    func isRegistered(hostID: String) -> Bool {
        self.registrations[hostID] != nil
    }

    /// How many hosts of each company are connected (the operator's counts).
    func onlineHostCounts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for registration in self.registrations.values { counts[registration.companyID, default: 0] += 1 }
        return counts
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
