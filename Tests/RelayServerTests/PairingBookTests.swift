import NIOCore
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

    private static func isPaired(_ redemption: Book.Redemption, with viewer: Viewer) -> Bool {
        if case .paired(let issued) = redemption { return issued.viewer === viewer }
        return false
    }

    private static func withdrawn(_ redemption: Book.Redemption) -> [SupportCode]? {
        if case .invalid(let withdrawn) = redemption { return withdrawn.map(\.code) }
        return nil
    }

    // MARK: Issuing

    @Test func issuedCodesAreUniqueAndSixDigits() {
        var book = Book()
        var generator = SeededGenerator(seed: 0x1234)
        let viewer = Viewer()
        var seen = Set<UInt32>()
        for _ in 0..<2000 {
            let issued = book.issueCode(for: viewer, companyID: "acme", now: Self.start, using: &generator)
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
        var first = SeededGenerator(seed: 77)
        for _ in 0..<100 { _ = book.issueCode(for: Viewer(), companyID: "acme", now: Self.start, using: &first) }
        var replay = SeededGenerator(seed: 77)
        for _ in 0..<100 { _ = book.issueCode(for: Viewer(), companyID: "acme", now: Self.start, using: &replay) }
        #expect(book.codes.count == 200)
    }

    // MARK: Redeeming

    @Test func aCodeIsRedeemedOnceOnly() {
        var book = Book()
        var generator = SeededGenerator(seed: 1)
        let viewer = Viewer()
        let issued = book.issueCode(for: viewer, companyID: "acme", now: Self.start, using: &generator)
        let first = book.redeem(issued.code, now: Self.start + .seconds(30))
        #expect(Self.isPaired(first, with: viewer))
        if case .paired(let redeemed) = first { #expect(redeemed.code == issued.code && redeemed.companyID == "acme") }
        #expect(book.codes.isEmpty)
        #expect(Self.withdrawn(book.redeem(issued.code, now: Self.start + .seconds(31))) == [])
    }

    @Test func aCodeExpiresExactlyAtItsDeadline() {
        var generator = SeededGenerator(seed: 2)
        let viewer = Viewer()
        var book = Book()
        let issued = book.issueCode(for: viewer, companyID: "acme", now: Self.start, using: &generator)
        var justBefore = book
        #expect(Self.isPaired(justBefore.redeem(issued.code, now: issued.expiresAt - .nanoseconds(1)), with: viewer))
        #expect(Self.withdrawn(book.redeem(issued.code, now: issued.expiresAt)) != nil)
        #expect(Self.withdrawn(book.redeem(issued.code, now: issued.expiresAt + .minutes(5))) != nil)
    }

    @Test func aWrongCodeIsInvalid() {
        var book = Book()
        var generator = SeededGenerator(seed: 3)
        let issued = book.issueCode(for: Viewer(), companyID: "acme", now: Self.start, using: &generator)
        let wrong = Self.unusedCode(in: book, near: issued.code)
        #expect(Self.withdrawn(book.redeem(wrong, now: Self.start)) == [])
        #expect(book.codes[issued.code.value] != nil, "a wrong guess must not use up the live code")
        // Redeeming on an empty book is invalid too.
        var empty = Book()
        #expect(Self.withdrawn(empty.redeem(wrong, now: Self.start)) == [])
    }

    @Test func everyFailureIsChargedToEveryLiveCodeUntilItIsWithdrawn() {
        let policy = Book.Policy(codeValidity: .minutes(10), codeFailureLimit: 4)
        var book = Book(policy: policy)
        var generator = SeededGenerator(seed: 4)
        let early = book.issueCode(for: Viewer(), companyID: "acme", now: Self.start, using: &generator)
        let other = book.issueCode(for: Viewer(), companyID: "globex", now: Self.start, using: &generator)
        let wrong = Self.unusedCode(in: book, near: early.code)

        for attempt in 1...2 {
            #expect(Self.withdrawn(book.redeem(wrong, now: Self.start + .seconds(Int64(attempt)))) == [])
        }
        #expect(book.codes[early.code.value]?.failuresSeen == 2)
        #expect(book.codes[other.code.value]?.failuresSeen == 2)

        // Issued after two failures: it has its own count.
        let late = book.issueCode(for: Viewer(), companyID: "acme", now: Self.start + .seconds(3), using: &generator)
        #expect(Self.withdrawn(book.redeem(wrong, now: Self.start + .seconds(4))) == [])
        #expect(book.codes[late.code.value]?.failuresSeen == 1)

        // The limit-th failure withdraws both older codes, at once, and says so.
        let fourth = Self.withdrawn(book.redeem(wrong, now: Self.start + .seconds(5)))
        #expect(fourth.map(Set.init) == [early.code, other.code])
        #expect(book.codes[early.code.value] == nil && book.codes[other.code.value] == nil)
        #expect(Self.isPaired(book.redeem(early.code, now: Self.start + .seconds(6)), with: early.viewer) == false)

        // The late code goes after its own fourth failure (the redeem above was its third).
        #expect(book.codes[late.code.value]?.failuresSeen == 3)
        #expect(Self.withdrawn(book.redeem(wrong, now: Self.start + .seconds(7))) == [late.code])
        #expect(book.codes.isEmpty)
    }

    @Test func aValidRedeemIsNotChargedToOtherCodes() {
        var book = Book()
        var generator = SeededGenerator(seed: 5)
        let first = book.issueCode(for: Viewer(), companyID: "acme", now: Self.start, using: &generator)
        let second = book.issueCode(for: Viewer(), companyID: "acme", now: Self.start, using: &generator)
        #expect(Self.isPaired(book.redeem(first.code, now: Self.start), with: first.viewer))
        #expect(book.codes[second.code.value]?.failuresSeen == 0)
    }

    // MARK: Withdrawing and expiring

    @Test func withdrawCodeRemovesOnlyThatViewersCodes() {
        var book = Book()
        var generator = SeededGenerator(seed: 6)
        let leaving = Viewer()
        let staying = Viewer()
        let a = book.issueCode(for: leaving, companyID: "acme", now: Self.start, using: &generator)
        let b = book.issueCode(for: staying, companyID: "acme", now: Self.start, using: &generator)
        let c = book.issueCode(for: leaving, companyID: "acme", now: Self.start, using: &generator)
        book.withdrawCode(of: leaving)
        #expect(book.codes[a.code.value] == nil && book.codes[c.code.value] == nil)
        #expect(book.codes[b.code.value]?.viewer === staying)
        #expect(book.codes.count == 1)
        book.withdrawCode(of: Viewer())
        #expect(book.codes.count == 1)
    }

    @Test func expireCodesReturnsExactlyTheExpiredOnes() {
        var book = Book()
        var generator = SeededGenerator(seed: 7)
        let old = book.issueCode(for: Viewer(), companyID: "acme", now: Self.start, using: &generator)
        let older = book.issueCode(for: Viewer(), companyID: "acme", now: Self.start - .minutes(3), using: &generator)
        let fresh = book.issueCode(for: Viewer(), companyID: "acme", now: Self.start + .seconds(1), using: &generator)

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
