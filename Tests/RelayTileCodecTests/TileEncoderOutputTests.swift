import NIOCore
import RelayScreen
import RelayTestSupport
import Testing

@testable import RelayTileCodec

// Pins what TileEncoder writes, byte for byte, for a long seeded script of desktop
// changes, so that a change meant to keep the encoder's output (a refactoring, a speed-up)
// is proved to keep it: the round-trip tests only show that the viewer ends up with the
// right image, which many different outputs would give.
//
// The hash is over the inflated parts (part header and rectangles, §7.2–§7.4), not over
// the wire bytes: deflate's output may differ between zlib versions, while the inflated
// bytes are the encoder's own decisions. Identical inflated parts, cut at the same
// places, deflate to identical bodies with the same zlib.
//
// A change that is meant to alter the output (a better encoding choice) updates the
// constants below, and says so in its commit.

/// What the encoder wrote over one run of the script.
struct EncoderOutput: Equatable, CustomStringConvertible {
    /// FNV-1a over every part's inflated length (u64) and bytes, in order.
    var inflatedHash: UInt64 = 0xCBF2_9CE4_8422_2325
    var inflatedBytes = 0
    var parts = 0
    /// The same over the bodies on the wire (zlib-dependent; not pinned).
    var wireHash: UInt64 = 0xCBF2_9CE4_8422_2325
    var wireBytes = 0

    static func fnv(_ hash: inout UInt64, _ bytes: some Sequence<UInt8>) {
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
    }

    mutating func add(inflated: ArraySlice<UInt8>, body: ByteBuffer) {
        Self.fnv(&self.inflatedHash, withUnsafeBytes(of: UInt64(inflated.count).bigEndian) { Array($0) })
        Self.fnv(&self.inflatedHash, inflated)
        Self.fnv(&self.wireHash, withUnsafeBytes(of: UInt64(body.readableBytes).bigEndian) { Array($0) })
        Self.fnv(&self.wireHash, body.readableBytesView)
        self.inflatedBytes += inflated.count
        self.wireBytes += body.readableBytes
        self.parts += 1
    }

    var description: String {
        "inflated 0x\(String(self.inflatedHash, radix: 16)) (\(self.inflatedBytes) bytes in \(self.parts) parts), "
            + "wire 0x\(String(self.wireHash, radix: 16)) (\(self.wireBytes) bytes)"
    }
}

@Suite("Tile encoder output")
struct TileEncoderOutputTests {
    /// The script of `TileCodecRoundTripTests.longScript` (typing, scrolling, window drags,
    /// video, full refreshes, and a quarter of the updates cut into parts at the smallest
    /// body limit), with the encoder's output inflated again on one session stream.
    static func runScript(findsCopies: Bool) throws -> EncoderOutput {
        let seed: UInt64 = 0x5EED_0070
        var random = SeededRandom(seed: seed)
        var scene = DesktopScene(width: 352, height: 288, seed: seed)
        let encoder = TileEncoder()
        encoder.findsCopies = findsCopies
        let inflater = InflateStream()
        var scratch: [UInt8] = []
        var output = EncoderOutput()
        func send(_ fullRefresh: Bool, _ limit: Int, requestID: UInt32) throws {
            let bodies = try encoder.encodeParts(scene.render(), requestID: requestID, fullRefresh: fullRefresh, maximumBodyLength: limit)
            for body in bodies {
                let zlib = Array(body.readableBytesView.dropFirst(4))
                let count = try zlib.withUnsafeBytes { raw in try inflater.inflate(raw, into: &scratch, limit: 1 << 24) }
                output.add(inflated: scratch[0..<count], body: body)
            }
        }
        try send(false, .max, requestID: 0)
        for step in 0..<300 {
            let fullRefresh = SeededDesktopScript.step(&scene, &random)
            let limit = random.oneIn(4) ? TileUpdateFormat.minimumBodyLength : .max
            try send(fullRefresh, limit, requestID: UInt32(step + 1))
        }
        return output
    }

    @Test("the seeded script encodes to the pinned inflated bytes, with copies")
    func withCopies() throws {
        let output = try Self.runScript(findsCopies: true)
        #expect(output.inflatedHash == 0x99E8_2A3A_4117_A3D4 && output.inflatedBytes == 1_445_891 && output.parts == 265, "\(output)")
    }

    @Test("the seeded script encodes to the pinned inflated bytes, without copies")
    func withoutCopies() throws {
        let output = try Self.runScript(findsCopies: false)
        #expect(output.inflatedHash == 0x5680_0386_9FB5_1F93 && output.inflatedBytes == 2_434_972 && output.parts == 266, "\(output)")
    }
}
