import NIOCore

// The encoder's parts (PROTOCOL.md §7.1, §7.6): the update's rectangles cut into parts
// whose bodies fit the relay's payload limit, each part deflated on the session's one
// stream and sync-flushed, after its request id.

extension TileEncoder {
    /// Cuts the rectangles into parts whose bodies fit `maximumBodyLength` (§7.6) and
    /// deflates each, sync-flushed, after its u32 request id (§7.1).
    func deflateParts(
        frame: Framebuffer,
        requestID: UInt32,
        maximumBodyLength: Int,
        statistics: inout TileUpdateStatistics
    ) throws(ScreenCodecError) -> [ByteBuffer] {
        let budget = TileUpdateFormat.partBudget(maximumBodyLength: maximumBodyLength)
        var bodies: [ByteBuffer] = []
        var first = 0
        var start = 0
        while first < self.rectEnds.count {
            var last = first
            while last + 1 < self.rectEnds.count, self.rectEnds[last + 1] - start <= budget { last += 1 }
            let end = self.rectEnds[last]
            let continues = last + 1 < self.rectEnds.count
            // Only a glyphs rectangle can be larger than a part (whose plan missed a hash
            // collision): an error, never a body over the relay's limit.
            guard end - start <= budget else {
                throw ScreenCodecError(
                    .bodyLimitTooSmall,
                    "a rectangle of \(end - start) bytes does not fit a part of at most \(budget) under the \(maximumBodyLength)-byte body limit (§7.6)"
                )
            }

            // The part header (§7.2) in a stack buffer: u16 width, u16 height, u8 flags,
            // u32 rectangle count.
            var header = (UInt64(0), UInt8(0))
            try withUnsafeMutableBytes(of: &header) { (raw) throws(ScreenCodecError) in
                raw.storeBytes(of: UInt16(truncatingIfNeeded: frame.width).bigEndian, toByteOffset: 0, as: UInt16.self)
                raw.storeBytes(
                    of: UInt16(truncatingIfNeeded: frame.height).bigEndian, toByteOffset: TileUpdateFormat.partHeightOffset, as: UInt16.self
                )
                raw[TileUpdateFormat.partFlagsOffset] = continues ? TileUpdateFormat.continuesFlag : 0
                raw.storeBytes(
                    of: UInt32(last - first + 1).bigEndian, toByteOffset: TileUpdateFormat.partRectCountOffset, as: UInt32.self
                )
                var body = self.allocator.buffer(capacity: 4 + (end - start) / 2 + 64)
                body.writeInteger(requestID)
                try self.deflater.compress(
                    UnsafeRawBufferPointer(rebasing: raw[0..<TileUpdateFormat.partHeaderLength]), flush: false, into: &body
                )
                try self.deflater.compress(
                    UnsafeRawBufferPointer(start: self.rects.base + start, count: end - start), flush: true, into: &body
                )
                statistics.bodyBytes += body.readableBytes
                bodies.append(body)
            }
            statistics.inflatedBytes += TileUpdateFormat.partHeaderLength + end - start
            statistics.parts += 1
            first = last + 1
            start = end
        }
        return bodies
    }
}
