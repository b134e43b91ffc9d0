import NIOCore
import RelayTestSupport
import Testing

@testable import RelayServer
@testable import RelayWire

// PairingBook is pure: connections are stand-in objects compared by identity, time is
// explicit, and codes come from a seeded generator.
@Suite struct PairingBookTests {
    private final class Viewer: Sendable {}
    private final class Host: Sendable {}
    private typealias Book = PairingBook<Viewer, Host>

    private static let start = NIODeadline.uptimeNanoseconds(5_000_000_000_000)

    /// A code no live code in `book` has.
    private static func unusedCode(in book: Book, near code: SupportCode) -> SupportCode {
        var value = code.value
        repeat { value = (value + 1) % 1_000_000 } while book.codes[value] != nil
        return SupportCode(value: value)!
    }

    // MARK: Issuing

    @Test func issuedCodesAreUniqueAndSixDigits() {
        var book = Book()
        var generator = SeededRandom(seed: 0x1234)
        let viewer = Viewer()
        var seen = Set<UInt32>()
        for index in 0..<2000 {
            let issued = book.issueCode(for: viewer, engineerID: "en-\(index)", companyID: "acme", now: Self.start, using: &generator).issued
            #expect(issued.code.value < 1_000_000)
            #expect(issued.code.description.count == 6 && issued.code.description.allSatisfy { $0.isASCII && $0.isNumber })
            #expect(seen.insert(issued.code.value).inserted, "code \(issued.code) issued twice")
            #expect(issued.expiresAt == Self.start + book.policy.codeValidity)
            #expect(issued.companyID == "acme" && issued.viewer === viewer)
        }
        #expect(book.codes.count == 2000)
    }

    /// A generator replaying the draws that made the live codes must still yield new ones.
    @Test func issuingSkipsCodesThatAreLive() {
        var book = Book()
        var first = SeededRandom(seed: 77)
        for index in 0..<100 { _ = book.issueCode(for: Viewer(), engineerID: "en-\(index)", companyID: "acme", now: Self.start, using: &first) }
        var replay = SeededRandom(seed: 77)
        for index in 0..<100 { _ = book.issueCode(for: Viewer(), engineerID: "en-\(index)", companyID: "acme", now: Self.start, using: &replay) }
        #expect(book.codes.count == 200)
    }

    // MARK: Redeeming

    private static func isPaired(_ attempt: Book.CodeAttempt, with viewer: Viewer) -> Bool {
        if case .paired(let issued) = attempt { return issued.viewer === viewer }
        return false
    }

    @Test func aCodeIsRedeemedOnceOnly() {
        var book = Book()
        var generator = SeededRandom(seed: 1)
        let viewer = Viewer()
        let issued = book.issueCode(for: viewer, engineerID: "en-kim", companyID: "acme", now: Self.start, using: &generator).issued
        let first = book.attemptRedemption(of: issued.code, now: Self.start + .seconds(30))
        #expect(Self.isPaired(first, with: viewer))
        if case .paired(let redeemed) = first { #expect(redeemed.code == issued.code && redeemed.companyID == "acme") }
        #expect(book.codes.isEmpty)
        #expect(Self.attemptIsInvalid(book.attemptRedemption(of: issued.code, now: Self.start + .seconds(31))))
    }

    @Test func aCodeExpiresExactlyAtItsDeadline() {
        var generator = SeededRandom(seed: 2)
        let viewer = Viewer()
        var book = Book()
        let issued = book.issueCode(for: viewer, engineerID: "en-kim", companyID: "acme", now: Self.start, using: &generator).issued
        var justBefore = book
        #expect(Self.isPaired(justBefore.attemptRedemption(of: issued.code, now: issued.expiresAt - .nanoseconds(1)), with: viewer))
        #expect(Self.attemptIsInvalid(book.attemptRedemption(of: issued.code, now: issued.expiresAt)))
        #expect(Self.attemptIsInvalid(book.attemptRedemption(of: issued.code, now: issued.expiresAt + .minutes(5))))
    }

    @Test func aWrongCodeIsInvalid() {
        var book = Book()
        var generator = SeededRandom(seed: 3)
        let issued = book.issueCode(for: Viewer(), engineerID: "en-kim", companyID: "acme", now: Self.start, using: &generator).issued
        let wrong = Self.unusedCode(in: book, near: issued.code)
        #expect(Self.attemptIsInvalid(book.attemptRedemption(of: wrong, now: Self.start)))
        #expect(book.codes[issued.code.value] != nil, "a wrong guess must not use up the live code")
        // Redeeming on an empty book is invalid too.
        var empty = Book()
        #expect(Self.attemptIsInvalid(empty.attemptRedemption(of: wrong, now: Self.start)))
    }

    /// The flaw of issue 10 item 7: each failed attempt counted against every live code,
    /// so ten wrong guesses from anywhere withdrew every honest code on the relay. Now no
    /// number of failures withdraws a code: they are charged to the guessing source and
    /// to the relay-wide budget instead.
    @Test func failuresNeverWithdrawLiveCodes() {
        // A budget large enough that the pause does not hide the point.
        var book = Book(policy: .init(guessBudget: .init(perMinute: 100_000, perHour: 100_000)))
        var generator = SeededRandom(seed: 4)
        let acme = book.issueCode(for: Viewer(), engineerID: "en-kim", companyID: "acme", now: Self.start, using: &generator).issued
        let globex = book.issueCode(for: Viewer(), engineerID: "en-lee", companyID: "globex", now: Self.start, using: &generator).issued
        let wrong = Self.unusedCode(in: book, near: acme.code)
        for attempt in 0..<1000 {
            #expect(Self.attemptIsInvalid(book.attemptRedemption(of: wrong, now: Self.start + .milliseconds(Int64(attempt)))))
        }
        #expect(book.codes.count == 2)
        #expect(Self.isPaired(book.attemptRedemption(of: acme.code, now: Self.start + .seconds(2)), with: acme.viewer))
        #expect(Self.isPaired(book.attemptRedemption(of: globex.code, now: Self.start + .seconds(2)), with: globex.viewer))
    }

    // MARK: Redeeming within the guess budget

    private static func attemptIsInvalid(_ attempt: Book.CodeAttempt) -> Bool {
        if case .invalid = attempt { return true }
        return false
    }

    private static func pausedFor(_ attempt: Book.CodeAttempt) -> TimeAmount? {
        if case .invalid(let pausedFor) = attempt { return pausedFor }
        return nil
    }

    private static func retryAfter(_ attempt: Book.CodeAttempt) -> TimeAmount? {
        if case .paused(let wait) = attempt { return wait }
        return nil
    }

    @Test func anAttemptPairsOnceAndOnlyBeforeExpiry() {
        var book = Book()
        var generator = SeededRandom(seed: 40)
        let issued = book.issueCode(for: Viewer(), engineerID: "en-kim", companyID: "acme", now: Self.start, using: &generator).issued
        var late = book
        guard case .paired(let redeemed) = book.attemptRedemption(of: issued.code, now: issued.expiresAt - .nanoseconds(1)) else {
            Issue.record("a live code must pair")
            return
        }
        #expect(redeemed.viewer === issued.viewer && redeemed.engineerID == "en-kim")
        #expect(Self.attemptIsInvalid(book.attemptRedemption(of: issued.code, now: issued.expiresAt - .nanoseconds(1))), "single use")
        #expect(Self.attemptIsInvalid(late.attemptRedemption(of: issued.code, now: issued.expiresAt)), "expired")
    }

    /// A flood of wrong codes pauses redemption relay-wide; it voids no code, and the
    /// honest holder's code pairs once the pause is over.
    @Test func spendingTheBudgetPausesRedemptionButKeepsCodesValid() {
        var book = Book()
        var generator = SeededRandom(seed: 41)
        let honest = book.issueCode(for: Viewer(), engineerID: "en-kim", companyID: "acme", now: Self.start, using: &generator).issued
        let wrong = Self.unusedCode(in: book, near: honest.code)
        let budget = book.policy.guessBudget
        var pauses: [TimeAmount] = []
        for index in 0..<budget.perMinute {
            let attempt = book.attemptRedemption(of: wrong, now: Self.start + .seconds(Int64(index)))
            #expect(Self.attemptIsInvalid(attempt))
            if let pause = Self.pausedFor(attempt) { pauses.append(pause) }
        }
        #expect(pauses == [budget.pause], "the failure that spends the budget reports the pause, once")
        let pausedAt = Self.start + .seconds(Int64(budget.perMinute - 1))
        // While paused, even the right code is refused unchecked, with the wait...
        #expect(Self.retryAfter(book.attemptRedemption(of: honest.code, now: pausedAt + .seconds(1))) == budget.pause - .seconds(1))
        #expect(book.redemptionPausedFor(now: pausedAt + .seconds(1)) == budget.pause - .seconds(1))
        #expect(Self.retryAfter(book.attemptRedemption(of: wrong, now: pausedAt + .seconds(2))) == budget.pause - .seconds(2))
        #expect(Book.pausedMessage(retryAfter: .milliseconds(59_001)).hasSuffix("try again in 60 s"))
        #expect(Book.pausedMessage(retryAfter: .nanoseconds(1)).hasSuffix("try again in 1 s"))
        // ...and stays live: the pause used nothing up.
        #expect(book.codes[honest.code.value] != nil)
        #expect(book.expireCodes(now: pausedAt + budget.pause).isEmpty)
        guard case .paired(let redeemed) = book.attemptRedemption(of: honest.code, now: pausedAt + budget.pause) else {
            Issue.record("the honest code must pair once the pause is over")
            return
        }
        #expect(redeemed.viewer === honest.viewer)
    }

    /// Property: a distributed guesser who tries every value in turn, as fast as the
    /// relay lets it, for a day, against codes that come and go, gets at most the hourly
    /// budget of codes checked in any hour and never voids an honest code.
    @Test func aDayOfGuessingStaysWithinTheBudget() {
        var book = Book()
        var generator = SeededRandom(seed: 42)
        let budget = book.policy.guessBudget
        var checked: [NIODeadline] = []
        var hits = 0
        var paired = 0
        var guess: UInt32 = 0
        var now = Self.start
        var nextIssue = Self.start
        while now < Self.start + .hours(24) {
            // An engineer asks for a code every two minutes; the customer types it a
            // minute later (after the code's own expiry check, see the end).
            if now >= nextIssue {
                _ = book.issueCode(for: Viewer(), engineerID: "en-\(paired % 7)", companyID: "acme", now: now, using: &generator)
                nextIssue = now + .minutes(2)
            }
            for issued in book.codes.values where now - (issued.expiresAt - book.policy.codeValidity) >= .minutes(1) {
                if case .paired = book.attemptRedemption(of: issued.code, now: now) { paired += 1 }
            }
            switch book.attemptRedemption(of: SupportCode(value: guess)!, now: now) {
            case .paired: hits += 1
            case .invalid: checked.append(now)
            case .paused: break
            }
            guess = (guess + 1) % 1_000_000
            now = now + .seconds(1)
            _ = book.expireCodes(now: now)
        }
        for (index, time) in checked.enumerated() {
            #expect(checked[index...].prefix { $0 < time + .hours(1) }.count <= budget.perHour)
        }
        #expect(checked.count <= 24 * budget.perHour)
        // The customers who typed while redemption was open paired; those who typed
        // during a pause retried until it ended or their code expired: none was voided.
        #expect(paired > 0)
        #expect(hits <= 1)
    }

    // MARK: Per-engineer cap

    @Test func anEngineersSixthCodeWithdrawsTheirOldest() {
        var book = Book()
        var generator = SeededRandom(seed: 50)
        var kims: [Book.IssuedCode] = []
        for index in 0..<5 {
            let issue = book.issueCode(for: Viewer(), engineerID: "en-kim", companyID: "acme", now: Self.start + .seconds(Int64(index)), using: &generator)
            #expect(issue.withdrawn == nil)
            kims.append(issue.issued)
        }
        let lee = book.issueCode(for: Viewer(), engineerID: "en-lee", companyID: "acme", now: Self.start, using: &generator)
        #expect(lee.withdrawn == nil)
        let sixth = book.issueCode(for: Viewer(), engineerID: "en-kim", companyID: "acme", now: Self.start + .seconds(10), using: &generator)
        #expect(sixth.withdrawn?.code == kims[0].code)
        #expect(book.withdrawnForNewerCodeMessage(kims[0]).contains("support code \(kims[0].code) was withdrawn"))
        #expect(book.withdrawnForNewerCodeMessage(kims[0]).contains("at most 5 live codes"))
        #expect(sixth.withdrawn?.viewer === kims[0].viewer)
        #expect(book.codes[kims[0].code.value] == nil)
        #expect(book.codes.values.count { $0.engineerID == "en-kim" } == 5)
        #expect(book.codes[lee.issued.code.value] != nil, "another engineer's codes are untouched")
        // The next withdraws the next oldest, whatever the clock says (issue order).
        let seventh = book.issueCode(for: Viewer(), engineerID: "en-kim", companyID: "acme", now: Self.start, using: &generator)
        #expect(seventh.withdrawn?.code == kims[1].code)
    }

    /// Property: whatever mix of issuing, redeeming, withdrawing and expiring, no engineer
    /// ever holds more live codes than the cap.
    @Test func noEngineerEverHoldsMoreThanTheCap() {
        var book = Book(policy: .init(maximumCodesPerEngineer: 3))
        var generator = SeededRandom(seed: 51)
        var now = Self.start
        for _ in 0..<3000 {
            now = now + .seconds(Int64.random(in: 0...20, using: &generator))
            let engineer = "en-\(Int.random(in: 0..<4, using: &generator))"
            switch Int.random(in: 0..<4, using: &generator) {
            case 0, 1:
                let issue = book.issueCode(for: Viewer(), engineerID: engineer, companyID: "acme", now: now, using: &generator)
                if let withdrawn = issue.withdrawn { #expect(withdrawn.engineerID == engineer) }
            case 2:
                if let code = book.codes.values.randomElement(using: &generator) { _ = book.attemptRedemption(of: code.code, now: now) }
            default:
                _ = book.expireCodes(now: now)
            }
            let held = Dictionary(grouping: book.codes.values, by: { $0.engineerID ?? "" })
            #expect(held.values.allSatisfy { $0.count <= 3 })
        }
    }

    // MARK: Withdrawing and expiring

    @Test func withdrawCodeRemovesOnlyThatViewersCodes() {
        var book = Book()
        var generator = SeededRandom(seed: 6)
        let leaving = Viewer()
        let staying = Viewer()
        let a = book.issueCode(for: leaving, engineerID: "en-kim", companyID: "acme", now: Self.start, using: &generator).issued
        let b = book.issueCode(for: staying, engineerID: "en-kim", companyID: "acme", now: Self.start, using: &generator).issued
        let c = book.issueCode(for: leaving, engineerID: "en-lee", companyID: "acme", now: Self.start, using: &generator).issued
        book.withdrawCode(of: leaving)
        #expect(book.codes[a.code.value] == nil && book.codes[c.code.value] == nil)
        #expect(book.codes[b.code.value]?.viewer === staying)
        #expect(book.codes.count == 1)
        book.withdrawCode(of: Viewer())
        #expect(book.codes.count == 1)
    }

    @Test func expireCodesReturnsExactlyTheExpiredOnes() {
        var book = Book()
        var generator = SeededRandom(seed: 7)
        let old = book.issueCode(for: Viewer(), engineerID: "en-kim", companyID: "acme", now: Self.start, using: &generator).issued
        let older = book.issueCode(for: Viewer(), engineerID: "en-kim", companyID: "acme", now: Self.start - .minutes(3), using: &generator).issued
        let fresh = book.issueCode(for: Viewer(), engineerID: "en-kim", companyID: "acme", now: Self.start + .seconds(1), using: &generator).issued

        #expect(book.expireCodes(now: older.expiresAt - .nanoseconds(1)).isEmpty)
        #expect(book.expireCodes(now: older.expiresAt).map(\.code) == [older.code])
        // `old` expires exactly at its deadline; `fresh` a second later.
        #expect(book.expireCodes(now: old.expiresAt).map(\.code) == [old.code])
        #expect(book.codes.keys.sorted() == [fresh.code.value])
        #expect(book.expireCodes(now: fresh.expiresAt + .hours(1)).map(\.code) == [fresh.code])
        #expect(book.codes.isEmpty)
        #expect(book.expireCodes(now: fresh.expiresAt + .hours(2)).isEmpty)
    }

    // MARK: Enrolled hosts

    @Test func registerReturnsTheRegistrationItReplaces() {
        var book = Book()
        let first = Host()
        let second = Host()
        #expect(book.register(first, hostID: "pc-17", companyID: "acme") == nil)
        #expect(book.register(second, hostID: "pc-17", companyID: "acme") === first)
        // The same connection registering again replaces nothing.
        #expect(book.register(second, hostID: "pc-17", companyID: "acme") == nil)
        #expect(book.register(first, hostID: "pc-18", companyID: "acme") == nil)
        #expect(book.registrations.count == 2)
        #expect(book.registrations["pc-17"]?.host === second)
    }

    @Test func unregisterRemovesOnlyTheSameConnection() {
        var book = Book()
        let old = Host()
        let current = Host()
        _ = book.register(old, hostID: "pc-17", companyID: "acme")
        _ = book.register(current, hostID: "pc-17", companyID: "acme")
        // The replaced connection closing must not remove its successor.
        book.unregister(old, hostID: "pc-17")
        #expect(book.registrations["pc-17"]?.host === current)
        book.unregister(current, hostID: "pc-18")
        #expect(book.registrations["pc-17"]?.host === current)
        book.unregister(current, hostID: "pc-17")
        #expect(book.registrations["pc-17"] == nil)
    }

    @Test func claimChecksCompanyAndBusy() {
        var book = Book()
        let host = Host()
        _ = book.register(host, hostID: "pc-17", companyID: "acme")

        guard case .noSuchHost = book.claim(hostID: "pc-99", companyID: "acme") else {
            Issue.record("an unknown host id must be .noSuchHost")
            return
        }
        guard case .noSuchHost = book.claim(hostID: "pc-17", companyID: "globex") else {
            Issue.record("another company's host must be .noSuchHost, the same answer as an unknown id")
            return
        }
        // The refused claim did not mark it busy.
        guard case .claimed(let claimed) = book.claim(hostID: "pc-17", companyID: "acme") else {
            Issue.record("the company's own host must be claimable")
            return
        }
        #expect(claimed === host)
        guard case .busy = book.claim(hostID: "pc-17", companyID: "acme") else {
            Issue.record("a second claim must be .busy")
            return
        }
        // Another company still gets .noSuchHost, not .busy: busy would reveal the host exists.
        guard case .noSuchHost = book.claim(hostID: "pc-17", companyID: "globex") else {
            Issue.record("another company must get .noSuchHost for a busy host too")
            return
        }
        #expect(book.registrations["pc-17"]?.isBusy == true)
    }
}
