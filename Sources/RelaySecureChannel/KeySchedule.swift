import Crypto
import Foundation
import RelayWire

/// The labels and lengths of the end-to-end protocol (PROTOCOL.md §5.3).
public enum SecureChannelProtocol {
    /// The version in KeyCommit and KeyShare.
    public static let version: UInt8 = 1
    /// What sealing adds to an inner message: its type byte and the GCM tag.
    public static let recordOverhead = 1 + Sealed.tagLength
    /// The inner type of the Identity record (only ever inside Sealed).
    public static let identityType: UInt8 = 0x4A

    static let transcriptLabel = Array("SupportRelay E2E v1".utf8)
    static let keysLabel = Array("SupportRelay E2E v1 keys".utf8)
    static let identityLabel = Array("SupportRelay E2E v1 identity".utf8)
}

/// What both sides derive from the handshake (PROTOCOL.md §5.3.4): one key per direction
/// and the short authentication string.
public struct SessionSecrets: Sendable {
    /// SHA-256 of the handshake: what the Identity signatures cover.
    public let transcriptHash: [UInt8]
    let hostToViewer: SymmetricKey
    let viewerToHost: SymmetricKey
    /// Six digits, `123 456`, that host and viewer compare over the phone: equal on both
    /// sides only if nobody is in between (one chance in a million otherwise).
    public let shortAuthenticationString: String

    /// The transcript hash: the label, the session id, the viewer's commitment and both
    /// KeyShare payloads, host's first.
    static func transcript(sessionID: SessionID, commitment: [UInt8], hostShare: [UInt8], viewerShare: [UInt8]) -> [UInt8] {
        var hash = SHA256()
        hash.update(data: SecureChannelProtocol.transcriptLabel)
        var id = [UInt8](repeating: 0, count: 16)
        for index in 0..<8 {
            id[index] = UInt8(truncatingIfNeeded: sessionID.high >> (56 - 8 * index))
            id[8 + index] = UInt8(truncatingIfNeeded: sessionID.low >> (56 - 8 * index))
        }
        hash.update(data: id)
        hash.update(data: commitment)
        hash.update(data: hostShare)
        hash.update(data: viewerShare)
        return Array(hash.finalize())
    }

    /// Derives the keys and the short string from the X25519 result and the transcript hash.
    static func derive(sharedSecret: [UInt8], transcriptHash: [UInt8]) throws(SecureChannelError) -> SessionSecrets {
        // A peer's low-order public key makes the result all zeros, known to anyone.
        guard sharedSecret.contains(where: { $0 != 0 }) else {
            throw SecureChannelError(.handshakeFailed, "the other side's key share is not a valid X25519 key; the session was ended")
        }
        let material = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: sharedSecret), salt: transcriptHash, info: SecureChannelProtocol.keysLabel, outputByteCount: 68
        )
        let bytes = material.withUnsafeBytes { Array($0) }
        let code = (UInt32(bytes[64]) << 24 | UInt32(bytes[65]) << 16 | UInt32(bytes[66]) << 8 | UInt32(bytes[67])) % 1_000_000
        let digits = String(format: "%06u", code)
        return SessionSecrets(
            transcriptHash: transcriptHash, hostToViewer: SymmetricKey(data: bytes[0..<32]), viewerToHost: SymmetricKey(data: bytes[32..<64]),
            shortAuthenticationString: "\(digits.prefix(3)) \(digits.suffix(3))"
        )
    }

    /// The key `role` seals with, and the one it opens with.
    func keys(for role: Role) -> (sending: SymmetricKey, receiving: SymmetricKey) {
        role == .host ? (self.hostToViewer, self.viewerToHost) : (self.viewerToHost, self.hostToViewer)
    }
}
