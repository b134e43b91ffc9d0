import Foundation
import RelaySignIn
import Testing

@Suite("TwoFactor: RFC 6238 codes, window and replay")
struct TwoFactorTests {
    /// RFC 6238 Appendix B, SHA-1 rows: the seed is the ASCII string "12345678901234567890".
    static let vectors: [(time: Int64, code: String)] = [
        (59, "94287082"), (1_111_111_109, "07081804"), (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"), (2_000_000_000, "69279037"), (20_000_000_000, "65353130"),
    ]
    let rfc = TwoFactor(secret: "12345678901234567890")

    @Test("RFC 6238 Appendix B, 8 digits")
    func rfcVectorsEightDigits() {
        for vector in Self.vectors {
            let step = TwoFactor.step(at: Date(timeIntervalSince1970: TimeInterval(vector.time)))
            #expect(self.rfc.code(step: step, digits: 8) == vector.code, "T=\(vector.time)")
        }
    }

    @Test("RFC 6238 Appendix B, 6 digits are the last six")
    func rfcVectorsSixDigits() throws {
        for vector in Self.vectors {
            let now = Date(timeIntervalSince1970: TimeInterval(vector.time))
            let expected = String(vector.code.suffix(6))
            #expect(self.rfc.code(step: TwoFactor.step(at: now)) == expected)
            #expect(try self.rfc.accept(code: expected, at: now, lastAcceptedStep: nil) == TwoFactor.step(at: now))
        }
    }

    @Test("one step of drift either way is accepted, two are not")
    func window() throws {
        let now = Date(timeIntervalSince1970: 1_700_000_015)
        let step = TwoFactor.step(at: now)
        #expect(try self.rfc.accept(code: self.rfc.code(step: step - 1), at: now, lastAcceptedStep: nil) == step - 1)
        #expect(try self.rfc.accept(code: self.rfc.code(step: step + 1), at: now, lastAcceptedStep: nil) == step + 1)
        for far in [step - 2, step + 2] {
            let error = #expect(throws: SignInError.self) { try self.rfc.accept(code: self.rfc.code(step: far), at: now, lastAcceptedStep: nil) }
            #expect(error?.kind == .wrongCredentials)
        }
    }

    @Test("a code of a step at or before the last accepted one is refused as a replay")
    func replay() throws {
        let now = Date(timeIntervalSince1970: 1_700_000_015)
        let step = TwoFactor.step(at: now)
        let code = self.rfc.code(step: step)
        let accepted = try self.rfc.accept(code: code, at: now, lastAcceptedStep: nil)
        let again = #expect(throws: SignInError.self) { try self.rfc.accept(code: code, at: now.addingTimeInterval(5), lastAcceptedStep: accepted) }
        #expect(again?.kind == .replayedCode)
        #expect(again?.message.contains("already used") == true)
        // The previous step's code, still inside the window, is refused too.
        let older = #expect(throws: SignInError.self) {
            try self.rfc.accept(code: self.rfc.code(step: step - 1), at: now, lastAcceptedStep: accepted)
        }
        #expect(older?.kind == .replayedCode)
        // The next step's code is accepted.
        #expect(try self.rfc.accept(code: self.rfc.code(step: step + 1), at: now.addingTimeInterval(30), lastAcceptedStep: accepted) == step + 1)
    }

    @Test("codes as people type them; malformed ones are refused before any HMAC")
    func typedForms() throws {
        let now = Date(timeIntervalSince1970: 59)
        #expect(try self.rfc.accept(code: "287 082", at: now, lastAcceptedStep: nil) == 1)
        for bad in ["", "28708", "2870820", "28708a", "２８７０８２"] {
            let error = #expect(throws: SignInError.self) { try self.rfc.accept(code: bad, at: now, lastAcceptedStep: nil) }
            #expect(error?.kind == .malformed, "\(bad)")
        }
    }

    @Test("new secrets: 32 base32 characters, different each time; the enrolment URL carries them")
    func secrets() throws {
        let a = TwoFactor.makeSecret()
        let b = TwoFactor.makeSecret()
        #expect(a.secret != b.secret)
        #expect(a.secret.count == 32)
        #expect(a.secret.allSatisfy { "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".contains($0) })
        let url = a.enrolmentURL(issuer: "ACME Korea", account: "kim")
        #expect(url.hasPrefix("otpauth://totp/ACME%20Korea:kim?secret="))
        #expect(url.contains("&issuer=ACME%20Korea"))
        #expect(!url.contains("digits=") && !url.contains("period=") && !url.contains("algorithm="))
    }
}
