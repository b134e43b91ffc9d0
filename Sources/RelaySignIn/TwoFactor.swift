public import Foundation
internal import HummingbirdOTP

/// TOTP two-factor codes (RFC 6238) as the relay checks them: HMAC-SHA-1, 6 digits, 30 s
/// steps, one step of clock drift either way, and no code used twice.
///
/// The code arithmetic is hummingbird-auth's (`HOTP`/`TOTP`); this type adds the policy.
/// The relay must compute the codes itself, so the secret is stored as it is (not hashed):
/// it is a secret at rest in the relay database, like a TLS private key in the data folder.
public struct TwoFactor: Sendable {
    /// Seconds per step (RFC 6238's X).
    public static let stepSeconds: Int64 = 30
    /// Digits of a code.
    public static let digits = 6
    /// Steps accepted before and after the current one (RFC 6238 §5.2's allowance for
    /// clocks and for typing).
    public static let window: Int64 = 1

    /// Base32 without the look-alike-free tweak: what authenticator apps read.
    private static let secretAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// The shared secret: 32 random base32 characters (160 bits, RFC 4226 §4's
    /// recommendation). hummingbird-auth keys HMAC with the secret's UTF-8 bytes, and the
    /// enrolment URL carries those bytes base32-encoded.
    public let secret: String

    public init(secret: String) {
        self.secret = secret
    }

    /// A new random secret for enrolment.
    public static func makeSecret() -> TwoFactor {
        var generator = SystemRandomNumberGenerator()
        let characters = (0..<32).map { _ in Self.secretAlphabet[Int.random(in: 0..<Self.secretAlphabet.count, using: &generator)] }
        return TwoFactor(secret: String(decoding: characters, as: UTF8.self))
    }

    /// The time step `date` falls in (RFC 6238's T).
    public static func step(at date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 / Double(Self.stepSeconds)).rounded(.down))
    }

    /// The code of step `step`, zero-padded, with `digits` digits (6 unless testing
    /// against RFC 6238's 8-digit vectors).
    public func code(step: Int64, digits: Int = Self.digits) -> String {
        let value = HOTP(secret: self.secret, length: digits, hashFunction: .sha1).compute(counter: UInt64(max(step, 0)))
        let text = String(value)
        return String(repeating: "0", count: max(digits - text.count, 0)) + text
    }

    /// The `otpauth://totp/…` URL an authenticator app reads from the enrolment QR code.
    /// `issuer` names the relay (the company's name, say), `account` the engineer.
    ///
    /// The label and issuer are percent-encoded with only RFC 3986's unreserved characters
    /// left as they are, so a name with `&`, `=`, `#` or `?` stays whole in every app.
    public func enrolmentURL(issuer: String, account: String) -> String {
        // SHA-1, 6 digits and 30 s are the format's defaults: left out, as apps expect.
        "otpauth://totp/\(Self.encoded(issuer)):\(Self.encoded(account))?secret=\(self.base32Secret)&issuer=\(Self.encoded(issuer))"
    }

    /// The secret as authenticator apps take it: base32 (RFC 4648, no padding) of the bytes
    /// hummingbird-auth keys HMAC with, read from its own authenticator URL.
    private var base32Secret: String {
        let reference = TOTP(secret: self.secret, length: Self.digits, timeStep: Int(Self.stepSeconds), hashFunction: .sha1)
            .createAuthenticatorURL(label: "x", issuer: "x")
        return URLComponents(string: reference)?.queryItems?.first { $0.name == "secret" }?.value ?? ""
    }

    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    private static func encoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: Self.unreserved) ?? ""
    }

    /// The key a person types into an authenticator app that cannot scan the QR code: the
    /// `secret` parameter of ``enrolmentURL(issuer:account:)`` (base32), in groups of four.
    public var manualEntryKey: String {
        let key = self.base32Secret
        var groups: [Substring] = []
        var rest = Substring(key)
        while !rest.isEmpty {
            groups.append(rest.prefix(4))
            rest = rest.dropFirst(4)
        }
        return groups.joined(separator: " ")
    }

    /// Checks `code` at `now`; returns the step it belongs to, which the caller stores as
    /// the account's last accepted step.
    ///
    /// A code of a step at or before `lastAcceptedStep` is refused even when it is right:
    /// a code seen over a shoulder or in a proxy log cannot be used again, and neither can
    /// an older one still inside the window.
    public func accept(code: String, at now: Date, lastAcceptedStep: Int64?) throws -> Int64 {
        let typed = code.filter { $0 != " " && $0 != "-" }
        guard typed.utf8.count == Self.digits, typed.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            throw SignInError(.malformed, "a two-factor code is \(Self.digits) digits; type the code your authenticator app shows now")
        }
        let current = Self.step(at: now)
        // Every step in the window is computed and compared before deciding, so the time
        // taken does not say which one matched.
        let matching = ((current - Self.window)...(current + Self.window)).filter { step in
            constantTimeEqual(Array(self.code(step: step).utf8), Array(typed.utf8))
        }
        if let step = matching.first(where: { step in lastAcceptedStep.map { step > $0 } ?? true }) {
            return step
        }
        let replayed = !matching.isEmpty
        if replayed {
            throw SignInError(.replayedCode, "this two-factor code was already used; wait for your authenticator app to show the next code and type that")
        }
        throw SignInError(
            .wrongCredentials, "the two-factor code is wrong; type the code your authenticator app shows now, and check that the device's clock is right")
    }
}
