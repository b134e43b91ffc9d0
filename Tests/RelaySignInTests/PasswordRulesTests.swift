import Foundation
import RelaySignIn
import Testing

@Suite("PasswordRules: the rules and bcrypt")
struct PasswordRulesTests {
    let fast = PasswordRules(cost: 4)

    @Test("passwords that break a rule are refused with the rule in words")
    func refused() {
        let cases: [(String, String)] = [
            ("short pass", "at least 12"),
            (String(repeating: "ab3$", count: 18) + "x", "73 bytes"),
            // 25 Hangul syllables: 25 characters, 75 bytes in UTF-8.
            (String(repeating: "가나다라마", count: 5), "75 bytes"),
            ("correct\thorse battery", "control character"),
            ("my-Kim.Lee-password", "contains the login"),
            ("aaaaaaaaaaaaabbb", "variety"),
        ]
        for (password, words) in cases {
            let error = #expect(throws: SignInError.self) { try self.fast.check(password, login: "kim.lee") }
            #expect(error?.kind == .weakPassword)
            #expect(error?.message.contains(words) == true, "\(password): \(error?.message ?? "")")
        }
    }

    @Test("a login of one or two characters does not forbid passwords that contain it")
    func shortLogin() throws {
        try self.fast.check("lilac fields in june", login: "li")
        #expect(throws: SignInError.self) { try self.fast.check("lilac fields in june", login: "lilac") }
    }

    @Test("a good password hashes with a salt and verifies; others do not")
    func hashAndVerify() throws {
        let password = "correct horse battery staple"
        let first = try self.fast.hash(password, login: "kim")
        let second = try self.fast.hash(password, login: "kim")
        #expect(first.hasPrefix("$2b$04$") && first.count == 60)
        #expect(first != second)
        #expect(self.fast.verify(password, hash: first))
        #expect(self.fast.verify(password, hash: second))
        #expect(!self.fast.verify("correct horse battery stapler", hash: first))
        #expect(!self.fast.verify(password, hash: nil))
        #expect(!self.fast.verify(password, hash: "not a hash"))
    }

    @Test("a password longer than bcrypt reads never matches the hash of its first 72 bytes")
    func noSilentTruncation() throws {
        let exactly72 = String(repeating: "Ab3$efgh", count: 9)
        let hash = try self.fast.hash(exactly72, login: "kim")
        #expect(self.fast.verify(exactly72, hash: hash))
        #expect(!self.fast.verify(exactly72 + "x", hash: hash))
        #expect(throws: SignInError.self) { try self.fast.hash(exactly72 + "x", login: "kim") }
    }

    /// The measured cost (PasswordRules.defaultCost's documentation): prints the time of one
    /// check at each cost from 10 to 12 (the fastest of three, so a busy machine does not
    /// skew it); a check at the default cost must be slow enough to matter to a guesser.
    /// Without an account the check takes about as long.
    @Test("bcrypt cost 12 is slow; a check without an account is as slow")
    func timing() throws {
        let clock = ContinuousClock()
        func fastest(_ body: () -> Void) -> Duration { (0..<3).map { _ in clock.measure(body) }.min() ?? .zero }
        for cost: UInt8 in [10, 11, PasswordRules.defaultCost] {
            let rules = PasswordRules(cost: cost)
            let hash = try rules.hash("correct horse battery staple", login: "kim")
            let known = fastest { _ = rules.verify("correct horse battery stapler", hash: hash) }
            let unknown = fastest { _ = rules.verify("correct horse battery stapler", hash: nil) }
            print("bcrypt cost \(cost): check \(known), without an account \(unknown)")
            if cost == PasswordRules.defaultCost {
                #expect(known > .milliseconds(50))
            }
            // Same work, so about the same time; the margin is for a busy machine. A dummy
            // hash bcrypt refused to parse would answer in microseconds.
            #expect(unknown * 4 > known, "cost \(cost): \(unknown) vs \(known)")
        }
    }
}
