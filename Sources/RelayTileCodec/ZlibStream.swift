import CSystemZlib
import NIOCore

// One zlib stream per session direction (PROTOCOL.md §7.1), continued across updates:
// every update ends in a Z_SYNC_FLUSH, so the viewer can inflate it completely while the
// window of earlier updates keeps helping the next one (as RFB's ZRLE does).
//
// zlib keeps a pointer back to its z_stream and refuses calls when the struct has moved
// (deflateStateCheck), so the z_stream lives in its own allocation, never in a Swift
// value that could be copied.

/// The host's half: compresses update parts into a ByteBuffer.
final class DeflateStream {
    private let stream: UnsafeMutablePointer<z_stream>

    init(level: Int32) {
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        let status = deflateInit2_(
            self.stream, level, Z_DEFLATED, MAX_WBITS, 8, Z_DEFAULT_STRATEGY,
            zlibVersion(), Int32(MemoryLayout<z_stream>.size)
        )
        precondition(status == Z_OK, "deflateInit2 failed with \(status): zlib is out of memory or mismatched")
    }

    deinit {
        deflateEnd(self.stream)
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
    }

    /// Compresses `input` onto the end of `buffer`. With `flush` true the stream is
    /// sync-flushed afterwards: everything so far can be inflated, and the output ends
    /// in the empty stored block `00 00 ff ff` (§7.1).
    func compress(_ input: UnsafeRawBufferPointer, flush: Bool, into buffer: inout ByteBuffer) throws(ScreenCodecError) {
        let mode = flush ? Z_SYNC_FLUSH : Z_NO_FLUSH
        self.stream.pointee.next_in = UnsafeMutablePointer(
            mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self)
        )
        self.stream.pointee.avail_in = uInt(input.count)
        defer {
            self.stream.pointee.next_in = nil
            self.stream.pointee.avail_in = 0
        }
        while true {
            var status: Int32 = Z_OK
            var outputFull = false
            // Incompressible input grows by about 5 bytes per 16 KiB stored block.
            let room = max(4096, Int(self.stream.pointee.avail_in) + Int(self.stream.pointee.avail_in) / 512 + 64)
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { out in
                self.stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                self.stream.pointee.avail_out = uInt(out.count)
                status = deflate(self.stream, mode)
                outputFull = self.stream.pointee.avail_out == 0
                let written = out.count - Int(self.stream.pointee.avail_out)
                self.stream.pointee.next_out = nil
                self.stream.pointee.avail_out = 0
                return written
            }
            // Z_BUF_ERROR only says "no progress was possible", which the loop's exit
            // condition already covers; any other status means zlib itself failed.
            guard status == Z_OK || status == Z_BUF_ERROR else {
                throw ScreenCodecError(.compressorFailed, "deflate returned \(status)")
            }
            if !outputFull && self.stream.pointee.avail_in == 0 { return }
        }
    }
}

/// The viewer's half: inflates one update's zlib bytes into a reusable scratch area,
/// refusing to produce more than a limit (the decompression-bomb fence, §7.7).
final class InflateStream {
    private let stream: UnsafeMutablePointer<z_stream>

    init() {
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        let status = inflateInit2_(self.stream, MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "inflateInit2 failed with \(status): zlib is out of memory or mismatched")
    }

    deinit {
        inflateEnd(self.stream)
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
    }

    /// Inflates all of `input` into the start of `output` and returns how many bytes it
    /// produced. `output` only ever grows, so the next update reuses it without clearing
    /// it again. Throws `inflateLimitExceeded` as soon as the output would pass `limit`
    /// bytes, without producing the rest.
    func inflate(_ input: UnsafeRawBufferPointer, into output: inout [UInt8], limit: Int) throws(ScreenCodecError) -> Int {
        self.stream.pointee.next_in = UnsafeMutablePointer(
            mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self)
        )
        self.stream.pointee.avail_in = uInt(input.count)
        defer {
            self.stream.pointee.next_in = nil
            self.stream.pointee.avail_in = 0
        }
        var produced = 0
        while true {
            // Grow geometrically, but never past limit + 1: one byte over is enough to know.
            if produced == output.count {
                guard produced <= limit else {
                    throw ScreenCodecError(
                        .inflateLimitExceeded,
                        "the update inflates to more than the decoder's limit of \(limit) bytes"
                    )
                }
                let grown = min(limit + 1, max(64 * 1024, output.count * 2))
                output.append(contentsOf: repeatElement(0, count: max(1, grown - output.count)))
            }
            var status: Int32 = Z_OK
            output.withUnsafeMutableBufferPointer { out in
                self.stream.pointee.next_out = out.baseAddress! + produced
                self.stream.pointee.avail_out = uInt(out.count - produced)
                status = CSystemZlib.inflate(self.stream, Z_SYNC_FLUSH)
                produced = out.count - Int(self.stream.pointee.avail_out)
                self.stream.pointee.next_out = nil
                self.stream.pointee.avail_out = 0
            }
            switch status {
            case Z_OK, Z_BUF_ERROR:
                // Done once all input is consumed and the output was not the limit.
                if self.stream.pointee.avail_in == 0 && produced < output.count {
                    return produced
                }
                if status == Z_BUF_ERROR && produced < output.count {
                    // No progress with input left and room to write: cannot happen with
                    // valid zlib data, but never loop on it.
                    throw ScreenCodecError(.corruptDeflate, "zlib made no progress on the update's bytes")
                }
            case Z_STREAM_END:
                throw ScreenCodecError(
                    .corruptDeflate,
                    "the zlib stream ended; it must continue for the whole session (§7.1)"
                )
            case Z_NEED_DICT:
                throw ScreenCodecError(.corruptDeflate, "the zlib stream asks for a preset dictionary (§7.1 has none)")
            default:
                let reason = self.stream.pointee.msg.map { String(cString: $0) } ?? "status \(status)"
                throw ScreenCodecError(.corruptDeflate, "zlib: \(reason)")
            }
        }
    }
}
