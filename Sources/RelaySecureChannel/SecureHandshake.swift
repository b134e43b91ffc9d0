public import Crypto
import Foundation
import NIOCore
public import RelayWire

/// Who is at the other end, as the handshake proved it: the identity key that signed this
/// handshake, and the name and organization that key vouched for.
public struct PeerIdentity: Sendable, Hashable {
    /// The raw 32-byte Ed25519 public key.
    public var identityKey: [UInt8]
    /// The name the peer's key signed for (an engineer's login, a host's name).
    public var name: String
    /// The organization the peer's key signed for (may be empty).
    public var organization: String

    public var publicKey: Curve25519.Signing.PublicKey { try! Curve25519.Signing.PublicKey(rawRepresentation: self.identityKey) }  // verified at decode
}

/// The end-to-end handshake of one side (PROTOCOL.md §5.3.4), as a pure state machine:
/// feed it the peer frames that arrive, send what it returns. No I/O, no clock; the
/// ephemeral key is injected so that tests can use fixed keys.
///
/// Viewer: KeyCommit → (host's KeyShare) → KeyShare, Identity → (host's Identity) → done.
/// Host: (viewer's KeyCommit) → KeyShare → (viewer's KeyShare) → Identity → (viewer's Identity) → done.
public struct SecureHandshake: Sendable {
    /// What this side is and says about itself.
    public struct Local: Sendable {
        public var role: Role
        public var identity: Curve25519.Signing.PrivateKey
        public var name: String
        public var organization: String

        public init(role: Role, identity: Curve25519.Signing.PrivateKey, name: String, organization: String) {
            self.role = role
            self.identity = identity
            self.name = name
            self.organization = organization
        }
    }

    /// The handshake is over: the keys for the session and who the peer is.
    public struct Established: Sendable {
        public var sealer: RecordSealer
        public var opener: RecordOpener
        public var peer: PeerIdentity
        public var secrets: SessionSecrets
    }

    public enum Step: Sendable {
        /// Send these frames, then wait for the next peer frame.
        case send([Frame])
        /// Send these frames (possibly none); the channel is up.
        case established([Frame], Established)
    }

    private enum State: Sendable {
        case idle
        /// Viewer: sent its commitment, waits for the host's share.
        case viewerCommitted(commitment: [UInt8], ownShare: [UInt8])
        /// Host: waits for the viewer's commitment.
        case hostWaitingForCommit
        /// Host: sent its share, waits for the viewer's.
        case hostShared(commitment: [UInt8], ownShare: [UInt8])
        /// Both: keys derived, own Identity sent, waits for the peer's Identity.
        case awaitingIdentity(sealer: RecordSealer, opener: RecordOpener, secrets: SessionSecrets, peerKey: Curve25519.Signing.PublicKey)
        case done
    }

    private let local: Local
    private let sessionID: SessionID
    private let ephemeral: Curve25519.KeyAgreement.PrivateKey
    private var state: State

    public init(_ local: Local, sessionID: SessionID, ephemeral: Curve25519.KeyAgreement.PrivateKey = .init()) {
        self.local = local
        self.sessionID = sessionID
        self.ephemeral = ephemeral
        self.state = local.role == .host ? .hostWaitingForCommit : .idle
    }

    /// This side's KeyShare payload.
    private var ownShare: KeyShare {
        KeyShare(
            version: SecureChannelProtocol.version, role: self.local.role, ephemeralKey: Array(self.ephemeral.publicKey.rawRepresentation),
            identityKey: Array(self.local.identity.publicKey.rawRepresentation)
        )
    }

    /// Starts: the viewer commits to its share; the host sends nothing yet.
    public mutating func start() throws -> [Frame] {
        guard case .idle = self.state, self.local.role == .viewer else { return [] }
        let share = try Frame(.keyShare(self.ownShare)).payload
        let shareBytes = Array(share.readableBytesView)
        let commitment = Array(SHA256.hash(data: shareBytes))
        self.state = .viewerCommitted(commitment: commitment, ownShare: shareBytes)
        return [try Frame(.keyCommit(KeyCommit(version: SecureChannelProtocol.version, commitment: commitment)))]
    }

    /// A peer frame arrived (relay control frames are not the handshake's business).
    public mutating func received(_ frame: Frame) throws -> Step {
        let peerRole = self.local.role == .host ? "viewer" : "host"
        switch (self.state, frame.type) {
        case (.hostWaitingForCommit, .keyCommit):
            let commit = try Self.decode(frame, as: KeyCommit.self, from: peerRole) { if case .keyCommit(let m) = $0 { m } else { nil } }
            try Self.check(version: commit.version, from: peerRole)
            let share = Array(try Frame(.keyShare(self.ownShare)).payload.readableBytesView)
            self.state = .hostShared(commitment: commit.commitment, ownShare: share)
            return .send([try Frame(.keyShare(self.ownShare))])

        case (.viewerCommitted(let commitment, let ownShare), .keyShare):
            let peerShare = try self.peerShare(frame, role: .host, from: peerRole)
            let transcript = SessionSecrets.transcript(
                sessionID: self.sessionID, commitment: commitment, hostShare: Array(frame.payload.readableBytesView), viewerShare: ownShare)
            return .send([try Frame(.keyShare(self.ownShare)), try self.derive(peerShare, transcript: transcript)])

        case (.hostShared(let commitment, let ownShare), .keyShare):
            let viewerShare = Array(frame.payload.readableBytesView)
            guard Array(SHA256.hash(data: viewerShare)) == commitment else {
                throw SecureChannelError(
                    .handshakeFailed,
                    "the viewer's key share does not match the commitment it sent first: someone between you and the engineer changed it; the session was ended"
                )
            }
            let peerShare = try self.peerShare(frame, role: .viewer, from: peerRole)
            let transcript = SessionSecrets.transcript(sessionID: self.sessionID, commitment: commitment, hostShare: ownShare, viewerShare: viewerShare)
            return .send([try self.derive(peerShare, transcript: transcript)])

        case (.awaitingIdentity(let sealer, var opener, let secrets, let peerKey), .sealed):
            let (type, payload) = try opener.open(frame)
            guard type == SecureChannelProtocol.identityType else {
                throw SecureChannelError(.unexpectedMessage, "the \(peerRole)'s first sealed record is not its Identity; the session was ended")
            }
            let identity = try IdentityRecord(payload: payload)
            guard
                peerKey.isValidSignature(
                    identity.signature, for: IdentityRecord.signed(role: self.local.role == .host ? .viewer : .host, secrets.transcriptHash))
            else {
                throw SecureChannelError(
                    .handshakeFailed,
                    "the \(peerRole)'s identity signature does not verify: its key did not sign this handshake, so someone may be in between; the session was ended"
                )
            }
            self.state = .done
            let peer = PeerIdentity(identityKey: Array(peerKey.rawRepresentation), name: identity.name, organization: identity.organization)
            return .established([], Established(sealer: sealer, opener: opener, peer: peer, secrets: secrets))

        case (_, let type) where type.isPeerMessage && !(MessageType.keyCommit.rawValue...MessageType.sealed.rawValue).contains(type.rawValue):
            throw SecureChannelError.plaintext(type.name, from: peerRole)
        default:
            throw SecureChannelError(.handshakeFailed, "the \(peerRole) sent \(frame.type.name) out of turn in the end-to-end handshake; the session was ended")
        }
    }

    /// Derives the session's keys from the peer's share, and seals this side's Identity
    /// as record 0.
    private mutating func derive(_ peer: KeyShare, transcript: [UInt8]) throws -> Frame {
        let peerEphemeral: Curve25519.KeyAgreement.PublicKey
        let peerIdentity: Curve25519.Signing.PublicKey
        do {
            peerEphemeral = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: peer.ephemeralKey)
            peerIdentity = try Curve25519.Signing.PublicKey(rawRepresentation: peer.identityKey)
        } catch {
            throw SecureChannelError(.handshakeFailed, "the other side's key share holds an invalid key; the session was ended")
        }
        let shared: [UInt8]
        do {
            shared = try self.ephemeral.sharedSecretFromKeyAgreement(with: peerEphemeral).withUnsafeBytes { Array($0) }
        } catch {
            throw SecureChannelError(.handshakeFailed, "the other side's key share is not a valid X25519 key; the session was ended")
        }
        let secrets = try SessionSecrets.derive(sharedSecret: shared, transcriptHash: transcript)
        let keys = secrets.keys(for: self.local.role)
        var sealer = RecordSealer(key: keys.sending)
        let signature = try self.local.identity.signature(for: IdentityRecord.signed(role: self.local.role, transcript))
        let identity = IdentityRecord(signature: Array(signature), name: self.local.name, organization: self.local.organization)
        let frame = try sealer.seal(type: SecureChannelProtocol.identityType, payload: try identity.payload())
        self.state = .awaitingIdentity(sealer: sealer, opener: RecordOpener(key: keys.receiving), secrets: secrets, peerKey: peerIdentity)
        return frame
    }

    private func peerShare(_ frame: Frame, role: Role, from peerRole: String) throws -> KeyShare {
        let share = try Self.decode(frame, as: KeyShare.self, from: peerRole) { if case .keyShare(let m) = $0 { m } else { nil } }
        try Self.check(version: share.version, from: peerRole)
        guard share.role == role else {
            throw SecureChannelError(
                .handshakeFailed,
                "the \(peerRole)'s key share says it comes from a \(share.role): someone replayed this side's own share; the session was ended")
        }
        return share
    }

    private static func check(version: UInt8, from peerRole: String) throws(SecureChannelError) {
        guard version == SecureChannelProtocol.version else {
            throw SecureChannelError(
                .unsupportedVersion,
                "the \(peerRole) speaks end-to-end version \(version), this relay-agent speaks \(SecureChannelProtocol.version); update relay-agent on both sides"
            )
        }
    }

    private static func decode<M>(_ frame: Frame, as: M.Type, from peerRole: String, _ pick: (RelayMessage) -> M?) throws(SecureChannelError) -> M {
        guard let message = try? RelayMessage(frame), let picked = pick(message) else {
            throw SecureChannelError(.handshakeFailed, "the \(peerRole)'s \(frame.type.name) is malformed; the session was ended")
        }
        return picked
    }
}

/// The inner Identity record (PROTOCOL.md §5.3.6): a signature over the handshake by the
/// sender's identity key, and the name and organization that key vouches for.
struct IdentityRecord: Sendable, Hashable {
    var signature: [UInt8]
    var name: String
    var organization: String

    /// What a side of `role` signs: the label, its role byte, the transcript hash.
    static func signed(role: Role, _ transcriptHash: [UInt8]) -> [UInt8] {
        SecureChannelProtocol.identityLabel + [role.rawValue] + transcriptHash
    }

    init(signature: [UInt8], name: String, organization: String) {
        self.signature = signature
        self.name = name
        self.organization = organization
    }

    init(payload: ByteBuffer) throws(SecureChannelError) {
        var buffer = payload
        guard let signature = buffer.readBytes(length: 64), let name = Self.readString(&buffer), let organization = Self.readString(&buffer),
            buffer.readableBytes == 0
        else {
            throw SecureChannelError(.handshakeFailed, "the other side's Identity record is malformed; the session was ended")
        }
        self.init(signature: signature, name: name, organization: organization)
    }

    func payload() throws -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeBytes(self.signature)
        for text in [self.name, self.organization] {
            // At most 1,024 bytes, cut between characters so that the text stays valid UTF-8.
            var cut = text
            while cut.utf8.count > 1024 { cut.removeLast() }
            let bytes = Array(cut.utf8)
            buffer.writeInteger(UInt16(bytes.count))
            buffer.writeBytes(bytes)
        }
        return buffer
    }

    private static func readString(_ buffer: inout ByteBuffer) -> String? {
        guard let length = buffer.readInteger(as: UInt16.self), let bytes = buffer.readBytes(length: Int(length)) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}
