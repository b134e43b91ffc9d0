import Foundation
import NIOCore
import Testing

@testable import RelayTileCodec

// Keeps docs/PROTOCOL.md §7.8 and the codec in step. Every "#### Tile vector:" there is
// a session of one or more TileUpdate bodies, each shown inflated and on the wire:
// the wire bytes inflate (one stream per vector) to the inflated bytes, the decoder turns
// them into the frame listed here, and for vectors an encoder produced, encoding that
// frame gives the same inflated bytes again. Every "#### Tile invalid:" fails on a fresh
// decoder with the kind its heading names. (Deflate output may differ between zlib
// versions, so wire bytes are checked by inflating them, not by re-deflating.)

/// What each vector's session ends with, and whether TileEncoder produced it.
struct TileVectorCase {
    var width: Int
    var height: Int
    /// The frame the decoder holds after the last body.
    var frame: Framebuffer
    /// True when the inflated bytes are exactly what TileEncoder writes for `frame` as
    /// the session's first update (request id 1).
    var fromEncoder: Bool
    /// Hand-written inflated updates (for vectors the encoder would not produce).
    var handmade: [[UInt8]] = []
    /// The request id of each hand-written body: the parts of one update share one.
    var requestIDs: [UInt32] = []

    static func frame(_ width: Int, _ height: Int, _ colour: (Int, Int) -> UInt32) -> Framebuffer {
        var frame = Framebuffer(width: width, height: height)
        for y in 0..<height { for x in 0..<width { frame.setRGB(colour(x, y), x: x, y: y) } }
        return frame
    }

    static let all: [String: TileVectorCase] = [
        "solid": TileVectorCase(width: 4, height: 2, frame: frame(4, 2) { _, _ in 0x336699 }, fromEncoder: true),
        "packed-palette": TileVectorCase(
            width: 8, height: 2, frame: frame(8, 2) { x, y in (x + y) % 2 == 0 ? 0x000000 : 0xFFFFFF }, fromEncoder: true
        ),
        "palette-rle": TileVectorCase(
            width: 16, height: 4, frame: frame(16, 4) { _, y in y < 2 ? 0x0000FF : 0xFFFF00 }, fromEncoder: true
        ),
        "rle": TileVectorCase(
            width: 34, height: 2, frame: frame(34, 2) { x, y in UInt32((y * 34 + x) / 4) * 0x0F0E0D }, fromEncoder: true
        ),
        "raw": TileVectorCase(
            width: 6, height: 3, frame: frame(6, 3) { x, y in UInt32(y * 6 + x + 1) * 0x0A0B0C }, fromEncoder: true
        ),
        "copy-swap": TileVectorCase(
            width: 8, height: 4,
            frame: frame(8, 4) { x, y in x == 0 && y == 0 ? 0x00FF00 : (y < 2 ? 0x0000FF : 0xFF0000) },
            fromEncoder: false,
            handmade: [
                partHeader(width: 8, height: 4, rects: 2)
                    + rectHeader(0x02, x: 0, y: 0, width: 8, height: 2) + [0x00, 0x00, 0xFF]
                    + rectHeader(0x02, x: 0, y: 2, width: 8, height: 2) + [0xFF, 0x00, 0x00],
                partHeader(width: 8, height: 4, rects: 3)
                    + rectHeader(0x01, x: 0, y: 2, width: 8, height: 2) + [0, 0, 0, 0]
                    + rectHeader(0x01, x: 0, y: 0, width: 8, height: 2) + [0, 0, 0, 2]
                    + rectHeader(0x02, x: 0, y: 0, width: 1, height: 1) + [0x00, 0xFF, 0x00],
            ],
            requestIDs: [1, 2]
        ),
        "two-parts": TileVectorCase(
            width: 8, height: 4,
            frame: frame(8, 4) { x, y in (2..<6).contains(x) && (1..<3).contains(y) ? 0xFFFFFF : 0x808080 },
            fromEncoder: false,
            handmade: [
                partHeader(width: 8, height: 4, continues: true, rects: 1)
                    + rectHeader(0x02, x: 0, y: 0, width: 8, height: 4) + [0x80, 0x80, 0x80],
                partHeader(width: 8, height: 4, rects: 1)
                    + rectHeader(0x02, x: 2, y: 1, width: 4, height: 2) + [0xFF, 0xFF, 0xFF],
            ],
            requestIDs: [1, 1]
        ),
        "glyphs": TileVectorCase(
            width: 12, height: 4,
            frame: frame(12, 4) { x, y in
                switch (x, y) {
                case (1, 1), (2, 2), (9, 2), (10, 3): 0xFFFFFF
                case (10, 2), (9, 3): 0x000000
                case (5...7, 1...2): 0xFF0000
                case (8...11, _): 0x336699
                default: 0x000000
                }
            },
            fromEncoder: false,
            handmade: [
                partHeader(width: 12, height: 4, rects: 1) + rectHeader(0x07, x: 0, y: 0, width: 12, height: 4)
                    + [0, 0, 0, 0, 1, 0, 1, 0, 2]
                    + [1, 0x80, 0x00, 2, 2, 2, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x80, 0x40]
                    + [4, 0x80, 0x01, 3, 2, 1, 0, 0, 0xFF, 0, 0],
                partHeader(width: 12, height: 4, rects: 1) + rectHeader(0x07, x: 8, y: 0, width: 4, height: 4)
                    + [0x99, 0x66, 0x33, 0, 1, 0, 2, 0, 1, 1, 0x00, 0x00],
            ],
            requestIDs: [1, 2]
        ),
        "glyph-raw": TileVectorCase(
            width: 3, height: 2,
            frame: frame(3, 2) { x, y in [[0x000000, 0x0000FF, 0x00FF00], [0x000000, 0xFF0000, 0xFFFFFF]][y][x] },
            fromEncoder: false,
            handmade: [
                partHeader(width: 3, height: 2, rects: 1) + rectHeader(0x07, x: 0, y: 0, width: 3, height: 2)
                    + [0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0x80, 0x07, 2, 2, 0]
                    + [0xFF, 0, 0, 0, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]
            ],
            requestIDs: [1]
        ),
    ]

    /// Invalid vectors: a fresh decoder of 4×2 pixels gets one body (inflated bytes).
    static let invalid: [String: [UInt8]] = [
        "rect-out-of-bounds": partHeader(width: 4, height: 2, rects: 1) + rectHeader(0x02, x: 2, y: 0, width: 4, height: 2) + [1, 2, 3],
        "bad-palette-index": partHeader(width: 4, height: 2, rects: 1) + rectHeader(0x03, x: 0, y: 0, width: 4, height: 2)
            + [3, 0, 0, 0, 0x80, 0x80, 0x80, 0xFF, 0xFF, 0xFF] + [0b0001_1011, 0b0000_0000],
        "size-mismatch": partHeader(width: 8, height: 2, rects: 1) + rectHeader(0x02, x: 0, y: 0, width: 4, height: 2) + [1, 2, 3],
        "unknown-encoding": partHeader(width: 4, height: 2, rects: 1) + rectHeader(0x08, x: 0, y: 0, width: 4, height: 2) + [1, 2, 3],
        "run-overflow": partHeader(width: 4, height: 2, rects: 1) + rectHeader(0x06, x: 0, y: 0, width: 4, height: 2)
            + [0x10, 0x20, 0x30, 8],
        "unknown-glyph": partHeader(width: 4, height: 2, rects: 1) + rectHeader(0x07, x: 0, y: 0, width: 4, height: 2)
            + [1, 2, 3, 0, 1, 0, 0, 0, 1, 0, 0x00, 0x00],
        "bad-glyph": partHeader(width: 4, height: 2, rects: 1) + rectHeader(0x07, x: 0, y: 0, width: 4, height: 2)
            + [1, 2, 3, 0, 1, 0, 0, 0, 1, 0, 0x88, 0x00, 1, 1, 1, 0, 0, 0, 0],
        "trailing-bytes": partHeader(width: 4, height: 2, rects: 1) + rectHeader(0x02, x: 0, y: 0, width: 4, height: 2) + [1, 2, 3, 0],
    ]

    /// The bodies of a session, as the document shows them (request id 1, then 2, …).
    func bodies() throws -> (inflated: [[UInt8]], wire: [ByteBuffer]) {
        if self.fromEncoder {
            let encoder = TileEncoder()
            let body = try #require(try encoder.encode(self.frame, requestID: 1, fullRefresh: true))
            return ([try inflate([body])[0]], [body])
        }
        let stream = HandmadeStream()
        var wire: [ByteBuffer] = []
        for (inflated, requestID) in zip(self.handmade, self.requestIDs) {
            wire.append(try stream.body(requestID: requestID, inflated))
        }
        return (self.handmade, wire)
    }
}

/// Inflates bodies of one session in order, with a fresh stream.
func inflate(_ bodies: [ByteBuffer]) throws -> [[UInt8]] {
    let stream = InflateStream()
    var scratch: [UInt8] = []
    return try bodies.map { body in
        let zlib = Array(body.readableBytesView.dropFirst(4))
        let count = try zlib.withUnsafeBytes { raw in try stream.inflate(raw, into: &scratch, limit: 1 << 20) }
        return Array(scratch[0..<count])
    }
}

@Suite("PROTOCOL.md tile codec vectors")
struct TileCodecDocumentTests {
    private let document: TileVectorDocument

    init() throws {
        self.document = try TileVectorDocument.load()
    }

    @Test("the document and this test list the same vectors")
    func sameNames() {
        #expect(Set(self.document.vectors.map(\.name)) == Set(TileVectorCase.all.keys))
        #expect(self.document.vectors.count == TileVectorCase.all.count, "a vector name appears twice")
        #expect(Set(self.document.invalid.map(\.name)).isSuperset(of: TileVectorCase.invalid.keys))
        #expect(Set(self.document.invalid.map(\.name)).count == self.document.invalid.count, "an invalid name appears twice")
        #expect(self.document.invalid.count >= 8)
    }

    @Test("every vector's bodies inflate to its inflated bytes and decode to its frame")
    func vectorsDecode() throws {
        for vector in self.document.vectors {
            let expected = try #require(TileVectorCase.all[vector.name], "\(vector.name) is not in this test")
            #expect(vector.bodies.count == vector.inflated.count && !vector.bodies.isEmpty, "\(vector.name): inflated and body blocks pair up")
            let bodies = vector.bodies.map { ByteBuffer(bytes: $0) }
            #expect(try inflate(bodies) == vector.inflated, "\(vector.name): the bodies inflate to the inflated blocks")
            let decoder = TileDecoder()
            decoder.resize(width: expected.width, height: expected.height)
            for body in bodies { try decoder.apply(body) }
            #expect(!decoder.expectsContinuation, "\(vector.name): the last part ends the update")
            #expect(decoder.framebuffer == expected.frame, "\(vector.name): the decoded frame")
        }
    }

    @Test("the encoder writes exactly the documented inflated bytes for the vectors it produced")
    func encoderAgrees() throws {
        for (name, expected) in TileVectorCase.all {
            guard let vector = self.document.vectors.first(where: { $0.name == name }) else { continue }
            let (inflated, _) = try expected.bodies()
            #expect(inflated == vector.inflated, "\(name): the document's inflated bytes are what this implementation writes")
        }
    }

    /// §10.2 and §7.1: the protocol's tile-update frame vector carries not just opaque
    /// bytes but a body a viewer accepts: Body 1 of Tile vector "solid". (That the frame
    /// decodes as a TileUpdate with these bytes is RelayWireTests' ProtocolDocumentTests.)
    @Test("the §10.2 tile-update frame carries the solid vector's valid §7.1 body")
    func tileUpdateFrameCarriesAValidBody() throws {
        let frame = try #require(self.document.tileUpdateFrame?.bodies.first, "no \"#### Vector: tile-update\" hex block")
        // The §4 frame header: type 0x41 (TileUpdate), then the payload length as u24.
        try #require(frame.count >= 4)
        #expect(frame[0] == 0x41, "frame type")
        let body = Array(frame.dropFirst(4))
        #expect(Int(frame[1]) << 16 | Int(frame[2]) << 8 | Int(frame[3]) == body.count, "payload length")
        let solid = try #require(self.document.vectors.first { $0.name == "solid" })
        #expect(body == solid.bodies.first, "the frame's payload is Body 1 of Tile vector \"solid\"")
        let decoder = TileDecoder()
        decoder.resize(width: 4, height: 2)
        #expect(try decoder.apply(ByteBuffer(bytes: body)) == 1, "request id")
        #expect(decoder.framebuffer == Framebuffer(width: 4, height: 2, fill: 0x336699))
        #expect(!decoder.expectsContinuation)
    }

    @Test("every invalid vector fails with its kind on a fresh 4×2 decoder, leaving the framebuffer black")
    func invalidVectorsFail() throws {
        let kinds: [ScreenCodecError.Kind] = [
            .truncated, .trailingBytes, .unknownEncoding, .rectOutOfBounds, .badPaletteIndex, .badPaletteSize, .runOverflow,
            .corruptDeflate, .inflateLimitExceeded, .sizeMismatch, .noScreen, .unexpectedPart, .badGlyph, .unknownGlyph,
        ]
        for vector in self.document.invalid {
            #expect(kinds.map(\.description).contains(vector.kind), "\(vector.name): unknown kind \(vector.kind)")
            if let inflated = TileVectorCase.invalid[vector.name] {
                #expect(vector.inflated == [inflated], "\(vector.name): inflated bytes")
                #expect(try inflate([ByteBuffer(bytes: vector.bodies[0])]) == [inflated], "\(vector.name): body inflates")
            }
            let decoder = TileDecoder()
            decoder.resize(width: 4, height: 2)
            let error = #expect(throws: ScreenCodecError.self) { try decoder.apply(ByteBuffer(bytes: vector.bodies[0])) }
            #expect(error?.kind.description == vector.kind, "\(vector.name): \(String(describing: error))")
            #expect(decoder.framebuffer == Framebuffer(width: 4, height: 2))
        }
    }
}

/// The §7.8 vectors as written: each heading with its "Inflated" and "Body" hex blocks.
private struct TileVectorDocument {
    struct Vector {
        var name: String
        var kind: String
        var inflated: [[UInt8]] = []
        var bodies: [[UInt8]] = []
    }

    var vectors: [Vector] = []
    var invalid: [Vector] = []
    /// §10.2's "tile-update" frame vector (its one hex block, in `bodies`).
    var tileUpdateFrame: Vector?

    struct FormatError: Error, CustomStringConvertible { var description: String }

    static func load() throws -> TileVectorDocument {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/PROTOCOL.md")
        return try TileVectorDocument(markdown: String(contentsOf: url, encoding: .utf8))
    }

    init(markdown: String) throws {
        var current: Vector?
        var isInvalid = false
        var isFrame = false
        var label = ""
        var hex: [String]?
        func finish() {
            guard let vector = current else { return }
            if isFrame {
                self.tileUpdateFrame = vector
            } else if isInvalid {
                self.invalid.append(vector)
            } else {
                self.vectors.append(vector)
            }
        }
        for raw in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            if var lines = hex {
                if line == "```" {
                    let bytes = try lines.joined(separator: " ").split(separator: " ").map { token in
                        guard let byte = UInt8(token, radix: 16), token.count == 2 else {
                            throw FormatError(description: "\(current?.name ?? "?"): \"\(token)\" is not a hex byte")
                        }
                        return byte
                    }
                    if label.hasPrefix("Inflated") { current?.inflated.append(bytes) } else { current?.bodies.append(bytes) }
                    hex = nil
                } else {
                    lines.append(line)
                    hex = lines
                }
                continue
            }
            if line.hasPrefix("#") {
                finish()
                current = nil
                isFrame = false
                label = ""
                if line == "#### Vector: tile-update" {
                    current = Vector(name: "tile-update", kind: "")
                    isFrame = true
                } else if line.hasPrefix("#### Tile vector: ") {
                    current = Vector(name: String(line.dropFirst("#### Tile vector: ".count)), kind: "")
                    isInvalid = false
                } else if line.hasPrefix("#### Tile invalid: "), let open = line.lastIndex(of: "(") {
                    let title = line.dropFirst("#### Tile invalid: ".count)
                    current = Vector(
                        name: title[..<open].trimmingCharacters(in: .whitespaces),
                        kind: String(line[line.index(after: open)..<line.index(before: line.endIndex)])
                    )
                    isInvalid = true
                }
            } else if current != nil, line.hasPrefix("Inflated") || line.hasPrefix("Body") {
                label = line
            } else if current != nil, line == "```hex" {
                hex = []
            }
        }
        finish()
    }
}
