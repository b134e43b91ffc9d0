public import NIOCore

// End-to-end messages (PROTOCOL.md §5.3): peer messages like those of §5.2, forwarded by
// the relay unread. The handshake and the record layer that use them are in the
// RelaySecureChannel module; here is only their wire form.

/// The viewer's commitment to its key share, viewer → host, the first peer message of a
/// session: the host answers with its own share only after this, so a party in between
/// cannot choose its keys after seeing the viewer's (PROTOCOL.md §5.3.1).
public struct KeyCommit: Sendable, Hashable {
    /// The end-to-end protocol version this side speaks.
    public var version: UInt8
    /// SHA-256 of the viewer's KeyShare payload: 32 bytes.
    public var commitment: [UInt8]

    public static let commitmentLength = 32

    public init(version: UInt8, commitment: [UInt8]) {
        precondition(commitment.count == Self.commitmentLength, "a KeyCommit holds a 32-byte SHA-256 digest")
        self.version = version
        self.commitment = commitment
    }
}

/// One side's keys for the session, host → viewer and viewer → host (PROTOCOL.md §5.3.3).
public struct KeyShare: Sendable, Hashable {
    public var version: UInt8
    /// The side that sent it (a share with the wrong role is refused by the receiver).
    public var role: Role
    /// A fresh X25519 public key for this session: 32 bytes.
    public var ephemeralKey: [UInt8]
    /// The sender's Ed25519 identity public key: 32 bytes.
    public var identityKey: [UInt8]

    public static let keyLength = 32
    /// The payload's length: version, role and the two keys.
    public static let payloadLength = 2 + 2 * keyLength

    public init(version: UInt8, role: Role, ephemeralKey: [UInt8], identityKey: [UInt8]) {
        precondition(ephemeralKey.count == Self.keyLength && identityKey.count == Self.keyLength, "KeyShare keys are 32 bytes each")
        self.version = version
        self.role = role
        self.ephemeralKey = ephemeralKey
        self.identityKey = identityKey
    }
}

/// One end-to-end encrypted record, both ways (PROTOCOL.md §5.3.5): AES-256-GCM
/// ciphertext of an inner message, then its 16-byte tag. Opaque at this layer.
public struct Sealed: Sendable, Hashable {
    /// Ciphertext and tag.
    public var body: ByteBuffer

    /// The GCM tag's length.
    public static let tagLength = 16
    /// The shortest valid body: one byte of inner type, and the tag.
    public static let minimumBodyLength = 1 + tagLength

    public init(body: ByteBuffer) { self.body = body }
}

// MARK: - Wire form

extension KeyCommit {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.version = try buffer.readWireInteger("KeyCommit.version")
        self.commitment = try buffer.readWireBytes(count: Self.commitmentLength, "KeyCommit.commitment")
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.version)
        buffer.writeBytes(self.commitment)
    }
}

extension KeyShare {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        self.version = try buffer.readWireInteger("KeyShare.version")
        let role: UInt8 = try buffer.readWireInteger("KeyShare.role")
        guard let known = Role(rawValue: role) else { throw WireError(.invalidField, "KeyShare.role: \(role) is not 1 (host) or 2 (viewer)") }
        self.role = known
        self.ephemeralKey = try buffer.readWireBytes(count: Self.keyLength, "KeyShare.ephemeralKey")
        self.identityKey = try buffer.readWireBytes(count: Self.keyLength, "KeyShare.identityKey")
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(self.version, self.role.rawValue)
        buffer.writeBytes(self.ephemeralKey)
        buffer.writeBytes(self.identityKey)
    }
}

extension Sealed {
    init(payload buffer: inout ByteBuffer) throws(WireError) {
        guard buffer.readableBytes >= Self.minimumBodyLength else {
            throw WireError(.truncatedMessage, "Sealed: \(buffer.readableBytes) bytes is shorter than an inner type and a 16-byte tag")
        }
        self.body = buffer.readSlice(length: buffer.readableBytes)!
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeImmutableBuffer(self.body)
    }
}
