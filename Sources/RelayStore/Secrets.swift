internal import Crypto
package import Foundation

/// Random identifiers, tokens and secrets, and how they are stored and compared.
///
/// Tokens and secrets are 256 random bits; only their SHA-256 digest is stored. A digest
/// is enough for values nobody chose (no dictionary to try), and it is compared in
/// constant time. Tokens carry their owner's id in front (`en-xxxx.SECRET`), so a lookup
/// is by id and the secret part is only ever compared, never searched for.
package enum Secrets {
    /// Lowercase letters and digits without look-alikes (no 0/o, 1/l/i).
    private static let idAlphabet = Array("23456789abcdefghjkmnpqrstuvwxyz".utf8)

    /// A new id such as `co-7hq2mx9c4e`: a prefix naming the kind, then 50 random bits.
    package static func makeID(prefix: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let body = (0..<10).map { _ in idAlphabet[Int.random(in: 0..<idAlphabet.count, using: &generator)] }
        return prefix + "-" + String(decoding: body, as: UTF8.self)
    }

    /// 32 random bytes, base64url without padding (43 characters).
    package static func makeSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The stored form of a secret.
    package static func digest(_ secret: String) -> Data {
        Data(SHA256.hash(data: Data(secret.utf8)))
    }

    /// Compares `secret`'s digest with a stored digest without an early exit.
    package static func matches(_ secret: String, digest stored: Data) -> Bool {
        let candidate = digest(secret)
        guard candidate.count == stored.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(candidate, stored) { difference |= a ^ b }
        return difference == 0
    }

    /// Splits `id.secret`; nil when the token has no dot or an empty part.
    package static func splitToken(_ token: String) -> (id: String, secret: String)? {
        guard let dot = token.firstIndex(of: ".") else { return nil }
        let id = String(token[..<dot])
        let secret = String(token[token.index(after: dot)...])
        guard !id.isEmpty, !secret.isEmpty, id.utf8.count <= 64 else { return nil }
        return (id, secret)
    }
}
