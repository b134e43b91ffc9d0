internal import Crypto
public import Foundation

/// A random bearer value of web sign-in (a sign-in link's token, a web session's id) and
/// its stored form.
///
/// 256 random bits, base64url without padding (43 characters). The relay stores only the
/// SHA-256 digest: nobody chose the value, so there is no dictionary to try, and a copy of
/// the database does not hand out working links or sessions.
public struct SignInSecret: Hashable, Sendable {
    /// The value the browser holds (in the link's fragment, in the session cookie).
    public let value: String

    /// A new random value.
    public init() {
        var generator = SystemRandomNumberGenerator()
        self.value = Self.base64url(Data((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }))
    }

    /// A value as the browser sent it; nil unless it has the form of one (43 base64url
    /// characters), so no digest is computed for arbitrary input.
    public init?(received: String) {
        guard received.utf8.count == 43, received.utf8.allSatisfy({ Self.isBase64url($0) }) else { return nil }
        self.value = received
    }

    /// What the store keeps and looks up: SHA-256 of the value.
    public var digest: Data { Data(SHA256.hash(data: Data(self.value.utf8))) }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    private static func isBase64url(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"),
            UInt8(ascii: "_"):
            true
        default: false
        }
    }
}

/// Compares two byte strings without an early exit (codes, CSRF tokens).
func constantTimeEqual(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for (x, y) in zip(a, b) { difference |= x ^ y }
    return difference == 0
}
