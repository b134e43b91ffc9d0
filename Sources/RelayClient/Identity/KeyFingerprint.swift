public import Crypto
public import Foundation

/// How people compare identity keys: `SHA256:` followed by the unpadded base64 of the
/// SHA-256 digest of the raw 32-byte Ed25519 public key, in the form OpenSSH prints
/// (`SHA256:If4x36FUomFia/hUBG/SJxt77UtqvkWqWId+9H+XIbk`). The host prints its key's
/// fingerprint at start and `relay-agent keygen --show` prints it; a viewer's warning
/// about a changed host key shows the pinned and the presented one.
///
/// (OpenSSH hashes its own encoding of the key, so the same key shows a different
/// fingerprint in `ssh-keygen -l`; only the notation is shared.)
public enum KeyFingerprint {
    /// The fingerprint of an Ed25519 public key.
    public static func of(_ key: Curve25519.Signing.PublicKey) -> String {
        Self.of(rawPublicKey: key.rawRepresentation)
    }

    /// The fingerprint of a raw public key (32 bytes for Ed25519).
    public static func of(rawPublicKey: Data) -> String {
        var text = Data(SHA256.hash(data: rawPublicKey)).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return "SHA256:" + text
    }

    /// A public key as it is written in `known_hosts` and printed by `relay-agent keygen`:
    /// the standard base64 of its raw 32 bytes, with padding (44 characters).
    public static func base64(_ key: Curve25519.Signing.PublicKey) -> String {
        key.rawRepresentation.base64EncodedString()
    }
}
