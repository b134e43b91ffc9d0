package import Foundation
internal import RelayWire

/// The Ed25519 public keys engineers and enrolled hosts log in with, as the store keeps
/// and names them (issue 12 item 4).
///
/// The store keeps the raw 32 bytes: a public key, which proves nothing without its
/// private half, so a copy of the database or of the audit log holds nothing that logs in.
package enum AccountKey {
    /// How people compare keys (RelayWire's `KeyFingerprint`): `SHA256:` and the unpadded
    /// base64 of the SHA-256 digest of the raw key.
    package static func fingerprint(rawPublicKey: Data) -> String {
        KeyFingerprint.of(rawPublicKey: rawPublicKey)
    }
}

extension AccountKey {
    /// The length of a raw Ed25519 public key.
    package static let rawCount = 32
}

/// An account that logs in with a key: what the store says when its key is already another
/// account's (``SQLStore`` refuses it: a key names one account, and two machines that
/// share a private key can neither be told apart nor revoked one at a time).
protocol KeyAccount {
    static func keyInUse(fingerprint: String, other id: String) -> String
}

extension Engineer: KeyAccount {
    static func keyInUse(fingerprint: String, other id: String) -> String {
        "the public key \(fingerprint) is already the login key of engineer \(id); each engineer needs a key of their own: "
            + "on this engineer's machine run `relay-agent keygen` and give the public key it prints (`relay-agent keygen --show` prints it again)"
    }
}

extension EnrolledHost: KeyAccount {
    static func keyInUse(fingerprint: String, other id: String) -> String {
        "the public key \(fingerprint) is already the login key of host \(id); each host needs a key of its own, made on that host: "
            + "enroll it without --public-key, run `relay-agent keygen --host-id ID` on it with the id enrollment prints, "
            + "and give the public key that prints to `relay-server host set-key ID --public-key KEY`"
    }
}
