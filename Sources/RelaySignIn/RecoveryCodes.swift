internal import Crypto
public import Foundation

/// Single-use recovery codes: the way in when the authenticator device is lost.
///
/// Ten codes such as `k7qm-x2pd-9hrt-c4wz`: 16 characters from a 31-letter alphabet
/// without look-alikes (no 0/o, 1/l/i), 79 random bits each. The relay stores only their SHA-256
/// digests. A fast digest is enough here for the same reason as for tokens: nobody chose
/// the codes, and 2^79 guesses per code are out of reach offline; bcrypt would make a
/// check of ten codes cost seconds. A used code's digest is deleted.
public enum RecoveryCodes {
    /// Codes issued at a time (all earlier ones are replaced).
    public static let count = 10

    private static let alphabet = Array("23456789abcdefghjkmnpqrstuvwxyz".utf8)

    /// `count` new codes, as the engineer is shown them once.
    public static func make() -> [String] {
        var generator = SystemRandomNumberGenerator()
        return (0..<Self.count).map { _ in
            let characters = (0..<16).map { _ in Self.alphabet[Int.random(in: 0..<Self.alphabet.count, using: &generator)] }
            return stride(from: 0, to: 16, by: 4).map { String(decoding: characters[$0..<$0 + 4], as: UTF8.self) }.joined(separator: "-")
        }
    }

    /// The digest the store keeps for `code`, or nil when `code` (as typed: any case,
    /// with or without dashes and spaces) cannot be a recovery code.
    public static func digest(of code: String) -> Data? {
        let normalized = code.lowercased().filter { $0 != "-" && $0 != " " }
        guard normalized.utf8.count == 16, normalized.utf8.allSatisfy({ Self.alphabet.contains($0) }) else { return nil }
        return Data(SHA256.hash(data: Data(normalized.utf8)))
    }
}
