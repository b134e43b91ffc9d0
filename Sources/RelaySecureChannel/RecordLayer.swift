import Crypto
import Foundation
public import NIOCore
import NIOFoundationCompat
public import RelayWire

/// Seals one direction's messages (PROTOCOL.md §5.3.5): AES-256-GCM with this direction's
/// key; the nonce is four zero bytes and the record's sequence number, which counts every
/// record from 0 and is never sent; the additional data is the Sealed frame's header.
public struct RecordSealer: Sendable {
    private let key: SymmetricKey
    /// The next record's sequence number.
    public private(set) var sequence: UInt64 = 0

    init(key: SymmetricKey) { self.key = key }

    /// Seals an inner message of `type` into a Sealed frame.
    public mutating func seal(type: UInt8, payload: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> Frame {
        var plaintext = allocator.buffer(capacity: 1 + payload.readableBytes)
        plaintext.writeInteger(type)
        plaintext.writeImmutableBuffer(payload)
        let length = plaintext.readableBytes + Sealed.tagLength
        let header = try Self.header(length: length)
        let box = try AES.GCM.seal(plaintext.readableBytesView, using: self.key, nonce: Self.nonce(self.sequence), authenticating: header)
        self.sequence += 1
        var body = allocator.buffer(capacity: length)
        body.writeBytes(box.ciphertext)
        body.writeBytes(box.tag)
        return try Frame(type: .sealed, payload: body, allocator: allocator)
    }

    /// Seals a peer message (§5.2).
    public mutating func seal(_ message: RelayMessage, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> Frame {
        let frame = try Frame(message, allocator: allocator)
        return try self.seal(type: frame.type.rawValue, payload: frame.payload, allocator: allocator)
    }

    static func nonce(_ sequence: UInt64) -> AES.GCM.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for index in 0..<8 { bytes[4 + index] = UInt8(truncatingIfNeeded: sequence >> (56 - 8 * index)) }
        return try! AES.GCM.Nonce(data: bytes)  // 12 bytes: always a valid GCM nonce
    }

    /// The 4-byte header of a Sealed frame whose payload is `length` bytes (§2).
    static func header(length: Int) throws(SecureChannelError) -> [UInt8] {
        guard length <= Frame.maximumEncodablePayloadLength else {
            throw SecureChannelError(.unexpectedMessage, "a message of \(length) bytes is too large to seal; this is a bug in relay-agent")
        }
        return [
            MessageType.sealed.rawValue, UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length),
        ]
    }
}

/// Opens the other direction's records, in order (PROTOCOL.md §5.3.5).
public struct RecordOpener: Sendable {
    private let key: SymmetricKey
    /// The sequence number the next record must have been sealed with.
    public private(set) var sequence: UInt64 = 0

    init(key: SymmetricKey) { self.key = key }

    /// Opens a Sealed frame: the inner type and payload. Throws when the record was
    /// altered, replayed, reordered or follows a dropped one (its tag does not verify
    /// under the next sequence number); the channel is then unusable.
    public mutating func open(_ frame: Frame) throws(SecureChannelError) -> (type: UInt8, payload: ByteBuffer) {
        guard frame.type == .sealed, frame.payload.readableBytes >= Sealed.minimumBodyLength else {
            throw .tampered("a \(frame.type.name) of \(frame.payload.readableBytes) bytes is not a sealed record")
        }
        let header = try RecordSealer.header(length: frame.payload.readableBytes)
        let view = frame.payload.readableBytesView
        let split = view.index(view.endIndex, offsetBy: -Sealed.tagLength)
        let plaintext: Data
        do {
            let box = try AES.GCM.SealedBox(nonce: RecordSealer.nonce(self.sequence), ciphertext: view[..<split], tag: view[split...])
            plaintext = try AES.GCM.open(box, using: self.key, authenticating: header)
        } catch {
            throw .tampered("record \(self.sequence) did not verify")
        }
        self.sequence += 1
        return (plaintext[plaintext.startIndex], ByteBuffer(bytes: plaintext.dropFirst()))
    }
}
