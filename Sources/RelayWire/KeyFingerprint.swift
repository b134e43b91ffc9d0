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

/// An Ed25519 public key as people copy it between machines: the 44 characters of base64
/// that `relay-agent keygen` prints, or a whole `ed25519 BASE64 [comment]` line as it
/// prints for an --engineer-keys file. `relay-server engineer add` and `host enroll`
/// read keys this way (PROTOCOL.md §5.1.3, docs/OPERATIONS.md).
public enum PublicKeyText {
    /// The key `text` names, or nil when it is not one of the two forms.
    public static func parse(_ text: String) -> Curve25519.Signing.PublicKey? {
        let fields = text.split(whereSeparator: \.isWhitespace)
        let encoded: Substring
        switch fields.count {
        case 1: encoded = fields[0]
        case 2...:
            guard fields[0] == "ed25519" else { return nil }
            encoded = fields[1]
        default: return nil
        }
        guard let raw = Data(base64Encoded: String(encoded)), raw.count == 32 else { return nil }
        return try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
    }

    /// What to tell someone whose key text did not parse.
    public static let expected =
        "give the public key that `relay-agent keygen --show` prints (44 characters of base64, or the whole `ed25519 KEY name` line)"
}
