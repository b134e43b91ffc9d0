// libFuzzer entry point for the tile-delta decoder (PROTOCOL.md §7). Build and run with
// `FUZZ_TARGET=FuzzTileDecoder scripts/fuzz.sh`; see fuzz/README.md.
//
// Input layout (so that one input is a whole session):
//   byte 0: framebuffer width − 1 (mod 64); byte 1: height − 1 (mod 64)
//   then bodies, each a u16 big-endian length and that many bytes (the last one takes
//   what is left when the length says more).
// Seeds are the §7.8 vectors in this layout (scripts/fuzz.sh writes them).
//
// Per input: a TileDecoder of that size applies the bodies in order, stopping at the
// first error. Checked:
//  - an error leaves the framebuffer exactly as it was (§7.7);
//  - a success keeps the framebuffer's size;
//  - whatever image the decoder ends with, TileEncoder → TileDecoder carries it
//    losslessly (a full update, then an incremental one against a changed frame), with
//    and without the viewer's glyph table (§7.4.7).
// A trap, a memory error or a failed check crashes, and libFuzzer saves the input.

import NIOCore
import RelayTileCodec

@_cdecl("LLVMFuzzerTestOneInput")
public func tileDecoderFuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start = start, count >= 2 else { return 0 }
    let input = UnsafeBufferPointer(start: start, count: count)
    let width = Int(input[0] % 64) + 1
    let height = Int(input[1] % 64) + 1
    let decoder = TileDecoder(maximumInflatedBytes: 1 << 20)
    decoder.resize(width: width, height: height)

    var offset = 2
    while offset < count {
        var length = count - offset
        if count - offset >= 2 {
            length = min(Int(input[offset]) << 8 | Int(input[offset + 1]), count - offset - 2)
            offset += 2
        }
        let body = ByteBuffer(bytes: UnsafeBufferPointer(rebasing: input[offset..<(offset + length)]))
        offset += length
        let before = decoder.framebuffer
        do {
            try decoder.apply(body)
        } catch {
            precondition(decoder.framebuffer == before, "\(error) changed the framebuffer")
            break
        }
        precondition(decoder.framebuffer?.width == width && decoder.framebuffer?.height == height, "the size changed")
    }

    // Whatever the decoder made, the codec must carry it losslessly.
    guard let image = decoder.framebuffer else { fatalError("resize left no framebuffer") }
    roundTrip(image, glyphs: false)
    roundTrip(image, glyphs: true)
    return 0
}

/// A full update of `image`, then an incremental one with its middle pixel changed,
/// through a fresh encoder and decoder: both must reproduce it exactly.
func roundTrip(_ original: Framebuffer, glyphs: Bool) {
    var image = original
    let encoder = TileEncoder(glyphs: glyphs)
    let viewer = TileDecoder()
    viewer.resize(width: image.width, height: image.height)
    do {
        try viewer.apply(encoder.encode(image, requestID: 1, fullRefresh: true)!)
        precondition(viewer.framebuffer == image, "a full update did not reproduce the image (glyphs: \(glyphs))")
        let (x, y) = (image.width / 2, image.height / 2)
        image.setRGB(image.rgb(x: x, y: y) ^ 0x00FF_FFFF, x: x, y: y)
        try viewer.apply(encoder.encode(image, requestID: 2, fullRefresh: false)!)
        precondition(viewer.framebuffer == image, "an incremental update did not reproduce the image (glyphs: \(glyphs))")
    } catch {
        fatalError("the encoder's own updates failed to decode (glyphs: \(glyphs)): \(error)")
    }
}
