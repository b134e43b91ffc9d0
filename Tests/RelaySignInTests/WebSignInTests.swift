import Foundation
import RelaySignIn
import Testing

@Suite("WebSignIn: the sign-in state machine in virtual time")
struct WebSignInTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)
    let secret = TwoFactor(secret: "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

    @Test("password then code: signed in")
    func passwordThenCode() throws {
        var signIn = WebSignIn(now: self.start)
        try signIn.passwordAccepted(engineerID: "en-1", twoFactorEnrolled: true, newSecret: self.secret, now: self.start.addingTimeInterval(1))
        #expect(signIn.step == .secondFactor(engineerID: "en-1"))
        try signIn.codeRefused(now: self.start.addingTimeInterval(10))
        #expect(signIn.codeFailures == 1)
        try signIn.codeAccepted(now: self.start.addingTimeInterval(20))
        #expect(signIn.step == .signedIn(engineerID: "en-1"))
    }

    @Test("password without two-factor yet: enrolment with a new secret")
    func enrolmentAfterPassword() throws {
        var signIn = WebSignIn(now: self.start)
        try signIn.passwordAccepted(engineerID: "en-1", twoFactorEnrolled: false, newSecret: self.secret, now: self.start)
        #expect(signIn.step == .enrolTwoFactor(engineerID: "en-1", secret: self.secret.secret))
        try signIn.codeAccepted(now: self.start.addingTimeInterval(60))
        #expect(signIn.step == .signedIn(engineerID: "en-1"))
    }

    @Test("from a link: choose a password, enrol, signed in")
    func fromLink() throws {
        var signIn = WebSignIn(acceptedLinkFor: "en-2", now: self.start)
        #expect(signIn.step == .choosePassword(engineerID: "en-2"))
        #expect(throws: SignInError.self) { try signIn.codeAccepted(now: self.start) }
        try signIn.passwordChosen(newSecret: self.secret, now: self.start.addingTimeInterval(30))
        #expect(signIn.step == .enrolTwoFactor(engineerID: "en-2", secret: self.secret.secret))
        try signIn.codeAccepted(now: self.start.addingTimeInterval(60))
        #expect(signIn.step == .signedIn(engineerID: "en-2"))
    }

    @Test("five wrong codes start over")
    func attemptLimit() throws {
        var signIn = WebSignIn(now: self.start)
        try signIn.passwordAccepted(engineerID: "en-1", twoFactorEnrolled: true, newSecret: self.secret, now: self.start)
        for attempt in 1..<WebSignIn.codeAttemptLimit {
            try signIn.codeRefused(now: self.start.addingTimeInterval(Double(attempt)))
        }
        let error = #expect(throws: SignInError.self) { try signIn.codeRefused(now: self.start.addingTimeInterval(10)) }
        #expect(error?.kind == .expired)
        #expect(error?.message.hasPrefix("5 wrong two-factor codes") == true)
        #expect(signIn.step == .password)
        #expect(throws: SignInError.self) { try signIn.codeAccepted(now: self.start.addingTimeInterval(11)) }
    }

    @Test("a pending step older than 5 minutes has expired")
    func pendingExpiry() throws {
        var signIn = WebSignIn(now: self.start)
        try signIn.passwordAccepted(engineerID: "en-1", twoFactorEnrolled: true, newSecret: self.secret, now: self.start)
        try signIn.checkPending(self.start.addingTimeInterval(299))
        let error = #expect(throws: SignInError.self) { try signIn.codeAccepted(now: self.start.addingTimeInterval(300)) }
        #expect(error?.kind == .expired)
        #expect(signIn.step == .password)

        var link = WebSignIn(acceptedLinkFor: "en-2", now: self.start)
        let late = #expect(throws: SignInError.self) { try link.passwordChosen(newSecret: self.secret, now: self.start.addingTimeInterval(301)) }
        #expect(late?.message.contains("new sign-in link") == true)
    }

    @Test("steps out of order are refused")
    func outOfOrder() throws {
        var signIn = WebSignIn(now: self.start)
        #expect(throws: SignInError.self) { try signIn.codeAccepted(now: self.start) }
        #expect(throws: SignInError.self) { try signIn.codeRefused(now: self.start) }
        #expect(throws: SignInError.self) { try signIn.passwordChosen(newSecret: self.secret, now: self.start) }
        try signIn.passwordAccepted(engineerID: "en-1", twoFactorEnrolled: true, newSecret: self.secret, now: self.start)
        #expect(throws: SignInError.self) {
            try signIn.passwordAccepted(engineerID: "en-9", twoFactorEnrolled: true, newSecret: self.secret, now: self.start)
        }
        #expect(signIn.step == .secondFactor(engineerID: "en-1"))
    }
}
