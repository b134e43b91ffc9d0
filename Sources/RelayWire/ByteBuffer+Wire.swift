import NIOCore

// Wire primitives (PROTOCOL.md §3). All integers are big-endian. Readers either return
// the whole value and advance, or throw and leave the reader index where it was:
// a message decoder works on one complete frame payload, so running out of bytes is
// a malformed message, not a reason to wait.

extension ByteBuffer {
    mutating func readWireInteger<T: FixedWidthInteger>(
        as: T.Type = T.self,
        _ field: StaticString
    ) throws(WireError) -> T {
        guard let value = self.readInteger(endianness: .big, as: T.self) else {
            throw WireError(
                .truncatedMessage,
                "\(field): needs \(MemoryLayout<T>.size) bytes, \(self.readableBytes) left"
            )
        }
        return value
    }

    /// Reads a `str16`: a UInt16 byte count, then that many bytes of UTF-8.
    mutating func readWireString(_ field: StaticString) throws(WireError) -> String {
        let start = self.readerIndex
        let length = Int(try self.readWireInteger(as: UInt16.self, field))
        guard self.readableBytes >= length else {
            self.moveReaderIndex(to: start)
            throw WireError(
                .truncatedMessage,
                "\(field): length prefix says \(length) bytes, \(self.readableBytes) left"
            )
        }
        return try self.readWireUTF8(length: length, field, rewindTo: start)
    }

    /// Reads all remaining bytes as UTF-8.
    mutating func readWireRemainingString(_ field: StaticString) throws(WireError) -> String {
        try self.readWireUTF8(length: self.readableBytes, field, rewindTo: self.readerIndex)
    }

    private mutating func readWireUTF8(
        length: Int,
        _ field: StaticString,
        rewindTo start: Int
    ) throws(WireError) -> String {
        let text: String? = self.withUnsafeReadableBytes { raw in
            String(validating: UnsafeRawBufferPointer(rebasing: raw[..<length]), as: UTF8.self)
        }
        guard let text else {
            self.moveReaderIndex(to: start)
            throw WireError(.invalidUTF8, "\(field): \(length) bytes are not valid UTF-8")
        }
        self.moveReaderIndex(forwardBy: length)
        return text
    }

    /// Reads exactly `count` bytes into a fixed array of bytes (used for ids and codes).
    mutating func readWireBytes(count: Int, _ field: StaticString) throws(WireError) -> [UInt8] {
        guard let bytes = self.readBytes(length: count) else {
            throw WireError(.truncatedMessage, "\(field): needs \(count) bytes, \(self.readableBytes) left")
        }
        return bytes
    }

    /// Writes a `str16`; throws if the UTF-8 form is longer than 65,535 bytes.
    mutating func writeWireString(_ text: String, _ field: StaticString) throws(WireError) {
        let count = text.utf8.count
        guard count <= Int(UInt16.max) else {
            throw WireError(.fieldTooLong, "\(field): \(count) bytes of UTF-8, at most 65535 fit")
        }
        self.writeInteger(UInt16(count))
        self.writeString(text)
    }

    /// Throws unless the payload has been read to its end (PROTOCOL.md §3: no trailing bytes).
    func expectFullyRead(_ type: MessageType) throws(WireError) {
        guard self.readableBytes == 0 else {
            throw WireError(.trailingBytes, "\(type.name): \(self.readableBytes) bytes after the last field")
        }
    }
}
