// `relay-bench codec`: the tile-delta codec (PROTOCOL.md §7) encoding 1920×1080 frames on
// one thread, beside a baseline encoder in the same run.
//
// Synthetic cases, each a sequence of frames encoded in order, over and over:
//   typing      — a text editor where one glyph appears, then disappears (8×16 pixels)
//   scroll      — the editor's page scrolled by 3 lines (48 px) per frame, down then up
//   full-screen — two different desktops of text alternating: every tile changes
// `--frames DIR` encodes a folder of same-size PNG frames (sorted by name) once, in order.
// `--save-bodies DIR` writes the bodies of a session instead of timing anything, for the
// browser viewer benchmark (benchmarks/browser/bench_viewer.py); the format is below, at
// "Bodies for the browser".
//
// The baseline is the issue's "plain dirty-tile + zlib encoder": changed 64×64 tiles
// (memcmp against the previous frame), each solid or raw, one zlib stream at level 6,
// sync-flushed per update. It writes PROTOCOL.md §7 bodies (solid 0x02, raw 0x05), so
// TileDecoder checks it too. Both encoders' outputs are decoded outside the timing and
// compared with the source frames (lossless check).

import ArgumentParser
import CZlibBaseline
import Crypto
import NIOCore
import RelayScreen
import RelaySecureChannel
import RelayTileCodec
import RelayWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct CodecBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec",
        abstract: "Tile-delta codec: encode fps on one core for 1920×1080 updates, bytes beside a baseline encoder.",
        discussion: """
            Synthetic cases: typing (one glyph changes), scroll (a text page moves 48 px), \
            full-screen (every tile changes). --frames DIR encodes a folder of same-size PNG \
            frames in name order, reporting total bytes and fps. The baseline is dirty 64×64 \
            tiles, solid or raw only, one zlib stream at level 6. Targets: ≥ 60 fps per busy \
            core for typing and scroll, ≥ 15 fps for full-screen, scroll bytes ≤ 40% of the baseline's.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: "A folder of same-size PNG frames to encode in name order (instead of the synthetic cases).")
    var frames: String?

    @Option(name: .customLong("save-frames"), help: "Write the synthetic scroll sequence as PNGs into this folder (for --frames) and exit.")
    var saveFrames: String?

    @Option(name: .long, help: "zlib level of our encoder (the baseline always uses 6).")
    var level: Int32 = 1

    @Option(
        name: .customLong("save-bodies"),
        help: ArgumentHelp(
            "Write the TileEncoder bodies of each synthetic case (or of --frames) into DIR/CASE/ as NNNN.bin and meta.json, and exit.",
            discussion:
                "For benchmarks/browser/bench_viewer.py; the format is in benchmarks/README.md. A case folder's old .bin files and meta.json are replaced.",
            valueName: "DIR"))
    var saveBodies: String?

    @Option(name: .long, help: "With --save-bodies: updates per synthetic case after the first, full one.")
    var updates: Int = 120

    @Option(
        name: .customLong("body-limit"),
        help:
            "With --save-bodies: the largest body in bytes, as a host's relay payload limit (default: the relay's default limit less the end-to-end record overhead)."
    )
    var bodyLimit: Int = Frame.defaultMaximumPayloadLength - SecureChannelProtocol.recordOverhead

    static let width = 1920
    static let height = 1080

    func validate() throws {
        guard self.updates >= 1 else { throw ValidationError("--updates must be at least 1") }
        guard (0...9).contains(self.level) else { throw ValidationError("--level must be a zlib level from 0 to 9") }
        guard self.bodyLimit >= Frame.minimumPayloadLimit - SecureChannelProtocol.recordOverhead else {
            throw ValidationError(
                "--body-limit must be at least \(Frame.minimumPayloadLimit - SecureChannelProtocol.recordOverhead) bytes (a relay's smallest payload limit less the record overhead)"
            )
        }
    }

    func run() throws {
        if let saveBodies {
            try self.writeBodies(to: saveBodies)
            return
        }
        if let saveFrames {
            let sequence = Self.syntheticCases()[1].frames
            for (index, frame) in sequence.enumerated() {
                let name = "\(saveFrames)/scroll-\(String(repeating: "0", count: 3 - String(index).count))\(index).png"
                try PNGFile.write(frame, to: name)
            }
            print("wrote \(sequence.count) frames to \(saveFrames)")
            return
        }
        var report = Report(benchmark: "codec")
        // Settings go into notes: naming Report's JSON type in this file (which also imports
        // RelayScreen and zlib) makes Swift 6.3.1 fail with "circular reference".
        report.notes.append(
            self.frames == nil
                ? "zlib level \(self.level) (baseline: 6), one thread, \(self.common.seconds) s per synthetic case"
                : "zlib level \(self.level) (baseline: 6), one thread")
        if let folder = self.frames {
            try self.runFolder(folder, report: &report)
        } else {
            try self.runSynthetic(report: &report)
        }
        report.emit(json: self.common.json)
    }

    // MARK: - Synthetic cases

    struct SyntheticCase {
        var name: String
        var frames: [Framebuffer]
        /// The order frames are encoded in, cycling (every step is one realistic change).
        var order: [Int]
    }

    static func syntheticCases() -> [SyntheticCase] {
        let scene = DesktopScene(width: Self.width, height: Self.height, seed: 7)
        // typing: a glyph appears and disappears.
        var typed = scene
        typed.type(UInt8(ascii: "W"), column: 40)
        let typing = SyntheticCase(name: "typing", frames: [scene.render(), typed.render()], order: [0, 1])
        // scroll: 3 lines per frame, down 30 frames then back up.
        var scrolling = scene
        var scrollFrames: [Framebuffer] = []
        for _ in 0..<30 {
            scrollFrames.append(scrolling.render())
            scrolling.scroll(by: 48)
        }
        let down = Array(0..<30)
        let scroll = SyntheticCase(name: "scroll", frames: scrollFrames, order: down + down.reversed().dropFirst().dropLast())
        // full-screen: two unrelated desktops.
        let other = DesktopScene(width: Self.width, height: Self.height, seed: 99)
        let full = SyntheticCase(name: "full-screen", frames: [scene.render(), other.render()], order: [0, 1])
        return [typing, scroll, full]
    }

    func runSynthetic(report: inout Report) throws {
        for item in Self.syntheticCases() {
            for encoderName in Self.encoderNames {
                let encode = try Self.makeEncoder(encoderName, level: self.level)
                var step = 0
                var bytes = 0
                var updates = 0
                // Prime: the first frame as a full update, outside the timing.
                _ = try encode(item.frames[item.order[0]], true)
                step = 1
                var measurement = measure(
                    group: item.name, name: encoderName, payloadBytes: nil, unit: "updates", bytesPerOperation: 0,
                    seconds: self.common.seconds
                ) {
                    let frame = item.frames[item.order[step % item.order.count]]
                    step += 1
                    let size = (try? encode(frame, false)) ?? -1
                    precondition(size >= 0, "encoding failed")
                    bytes += size
                    updates += 1
                    return (1, size)
                }
                measurement.bytes = bytes
                measurement.note = "\(formatCount(Double(bytes) / Double(max(updates, 1)))) B/update"
                report.measurements.append(measurement)
            }
            // Lossless check outside timing: one pass of the sequence through a decoder.
            let (ok, detail) = try Self.verify(item.order.map { item.frames[$0] }, level: self.level)
            report.checks.append((name: item.name + ": decoder == frames after every update", passed: ok, detail: detail))
        }
        report.targets = [
            Target(
                description: "≥ 60 fps typing, one core", group: "typing", name: "TileEncoder", payloadBytes: nil, metric: .operationsPerSecond, minimum: 60),
            Target(
                description: "≥ 60 fps scrolled text page, one core", group: "scroll", name: "TileEncoder", payloadBytes: nil, metric: .operationsPerSecond,
                minimum: 60),
            Target(
                description: "≥ 15 fps full-screen change, one core", group: "full-screen", name: "TileEncoder", payloadBytes: nil,
                metric: .operationsPerSecond, minimum: 15),
        ]
        Self.addRatioCheck(&report, group: "scroll")
    }

    /// "scroll bytes ≤ 40% of the baseline's", from bytes per update of both encoders.
    static func addRatioCheck(_ report: inout Report, group: String) {
        guard let ours = report.measurements.first(where: { $0.group == group && $0.name == "TileEncoder" }),
            let base = report.measurements.first(where: { $0.group == group && $0.name == "baseline" })
        else { return }
        let oursPerFrame: Double = Double(ours.bytes) / Double(ours.operations)
        let basePerFrame: Double = Double(base.bytes) / Double(base.operations)
        let ratio: Double = oursPerFrame / basePerFrame
        let detail: String = formatFixed(ratio * 100, 1) + "% of the baseline's bytes per frame"
        report.checks.append((name: group + ": bytes ≤ 40% of the baseline's", passed: ratio <= 0.40, detail: detail))
    }

    // MARK: - Frames from a folder

    func runFolder(_ folder: String, report: inout Report) throws {
        let frames = try Self.readFrames(in: folder)
        report.notes.append("\(frames.count) frames of \(frames[0].width)×\(frames[0].height) from \(folder), each encoded once in name order")
        for encoderName in Self.encoderNames {
            let encode = try Self.makeEncoder(encoderName, level: self.level)
            var bytes = 0
            var updates = 0
            let stopwatch = Stopwatch()
            for (index, frame) in frames.enumerated() {
                let size = try encode(frame, index == 0)
                if size > 0 { updates += 1 }
                bytes += size
            }
            let wall = stopwatch.wall
            let cpu = stopwatch.cpu
            var measurement = Measurement(
                group: "frames", name: encoderName, payloadBytes: nil, unit: "frames", operations: frames.count, bytes: bytes, wall: wall, cpu: cpu)
            measurement.note = "\(bytes) B total, \(updates) updates"
            report.measurements.append(measurement)
        }
        let (ok, detail) = try Self.verify(frames, level: self.level)
        report.checks.append((name: "frames: decoder == frames after every update", passed: ok, detail: detail))
        Self.addRatioCheck(&report, group: "frames")
    }

    /// The folder's PNG frames in name order, with the unused byte cleared.
    static func readFrames(in folder: String) throws -> [Framebuffer] {
        let names = try Self.pngNames(in: folder)
        guard !names.isEmpty else { throw ValidationError("no .png files in \(folder)") }
        var frames: [Framebuffer] = []
        for name in names {
            var frame = try PNGFile.read("\(folder)/\(name)")
            // §7: the unused byte is not carried; capture clears it, so do the same here.
            for index in Swift.stride(from: 3, to: frame.pixels.count, by: 4) { frame.pixels[index] = 0 }
            guard frames.isEmpty || (frame.width == frames[0].width && frame.height == frames[0].height) else {
                throw ValidationError("the frames in \(folder) are not all the same size")
            }
            frames.append(frame)
        }
        return frames
    }

    static func pngNames(in folder: String) throws -> [String] {
        guard let directory = opendir(folder) else { throw ValidationError("cannot open \(folder)") }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.lowercased().hasSuffix(".png") { names.append(name) }
        }
        return names.sorted()
    }

    // MARK: - Encoders

    /// An encode function: frame, full refresh → body bytes (0 when nothing was sent).
    typealias Encode = (Framebuffer, Bool) throws -> Int

    /// Ours as a viewer without the glyph table gets it, ours with it (PROTOCOL.md
    /// §7.4.7), and the plain dirty-tile baseline.
    static let encoderNames = ["TileEncoder", "TileEncoder+glyphs", "baseline"]

    static func makeEncoder(_ name: String, level: Int32) throws -> Encode {
        if name != "baseline" {
            let encoder = TileEncoder(compressionLevel: level, glyphs: name == "TileEncoder+glyphs")
            var request: UInt32 = 0
            return { frame, full in
                request &+= 1
                return try encoder.encode(frame, requestID: request, fullRefresh: full)?.readableBytes ?? 0
            }
        }
        let baseline = BaselineEncoder()
        return { frame, full in baseline.encode(frame, fullRefresh: full)?.readableBytes ?? 0 }
    }

    /// Encodes `frames` in order with both encoders and decodes every update.
    static func verify(_ frames: [Framebuffer], level: Int32) throws -> (Bool, String) {
        var checked = 0
        for name in Self.encoderNames {
            let decoder = TileDecoder()
            decoder.resize(width: frames[0].width, height: frames[0].height)
            let tile = TileEncoder(compressionLevel: level, glyphs: name == "TileEncoder+glyphs")
            let baseline = BaselineEncoder()
            for (index, frame) in frames.enumerated() {
                let body =
                    name == "baseline"
                    ? baseline.encode(frame, fullRefresh: index == 0)
                    : try tile.encode(frame, requestID: UInt32(index), fullRefresh: index == 0)
                if let body { try decoder.apply(body) }
                guard decoder.framebuffer == frame else { return (false, "\(name): frame \(index) differs after decoding") }
                checked += 1
            }
        }
        return (true, "\(checked) updates decoded, all equal")
    }
}

/// The issue's baseline: dirty 64×64 tiles, solid or raw, one zlib stream at level 6.
final class BaselineEncoder {
    private let stream: UnsafeMutablePointer<z_stream>
    private var previous: Framebuffer?
    private var raw: [UInt8] = []

    init() {
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        let status = deflateInit_(self.stream, 6, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK)
    }

    deinit {
        deflateEnd(self.stream)
        self.stream.deallocate()
    }

    func encode(_ frame: Framebuffer, fullRefresh: Bool) -> ByteBuffer? {
        let old = fullRefresh ? nil : self.previous.flatMap { $0.width == frame.width && $0.height == frame.height ? $0 : nil }
        self.raw.removeAll(keepingCapacity: true)
        func u16(_ value: Int) {
            self.raw.append(UInt8(value >> 8))
            self.raw.append(UInt8(value & 0xFF))
        }
        u16(frame.width)
        u16(frame.height)
        self.raw.append(0)
        self.raw += [0, 0, 0, 0]
        var count = 0
        let stride = frame.width * 4
        frame.pixels.withUnsafeBytes { new in
            for tileY in Swift.stride(from: 0, to: frame.height, by: 64) {
                for tileX in Swift.stride(from: 0, to: frame.width, by: 64) {
                    let width = min(64, frame.width - tileX)
                    let height = min(64, frame.height - tileY)
                    if let old {
                        let changed = old.pixels.withUnsafeBytes { oldBytes in
                            (0..<height).contains { row in
                                let offset = (tileY + row) * stride + tileX * 4
                                return memcmp(oldBytes.baseAddress! + offset, new.baseAddress! + offset, width * 4) != 0
                            }
                        }
                        if !changed { continue }
                    }
                    let first = new.loadUnaligned(fromByteOffset: tileY * stride + tileX * 4, as: UInt32.self) & 0xFFFFFF
                    let solid = (0..<height).allSatisfy { row in
                        (0..<width).allSatisfy { column in
                            new.loadUnaligned(fromByteOffset: (tileY + row) * stride + (tileX + column) * 4, as: UInt32.self) & 0xFFFFFF == first
                        }
                    }
                    self.raw.append(solid ? 0x02 : 0x05)
                    u16(tileX)
                    u16(tileY)
                    u16(width)
                    u16(height)
                    if solid {
                        self.raw += [UInt8(first & 0xFF), UInt8((first >> 8) & 0xFF), UInt8(first >> 16)]
                    } else {
                        for row in 0..<height {
                            let offset = (tileY + row) * stride + tileX * 4
                            for column in 0..<width {
                                self.raw.append(new[offset + column * 4])
                                self.raw.append(new[offset + column * 4 + 1])
                                self.raw.append(new[offset + column * 4 + 2])
                            }
                        }
                    }
                    count += 1
                }
            }
        }
        self.previous = frame
        guard count > 0 else { return nil }
        self.raw[5] = UInt8(count >> 24)
        self.raw[6] = UInt8((count >> 16) & 0xFF)
        self.raw[7] = UInt8((count >> 8) & 0xFF)
        self.raw[8] = UInt8(count & 0xFF)
        var body = ByteBuffer()
        body.writeInteger(UInt32(0))
        self.raw.withUnsafeMutableBytes { input in
            self.stream.pointee.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
            self.stream.pointee.avail_in = uInt(input.count)
            repeat {
                body.writeWithUnsafeMutableBytes(minimumWritableBytes: 1 << 16) { out in
                    self.stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    self.stream.pointee.avail_out = uInt(out.count)
                    _ = deflate(self.stream, Z_SYNC_FLUSH)
                    return out.count - Int(self.stream.pointee.avail_out)
                }
            } while self.stream.pointee.avail_out == 0
        }
        return body
    }
}

// MARK: - Bodies for the browser
//
// `--save-bodies DIR` encodes as a host's session does: one TileEncoder (so one zlib
// stream) per case, the first frame as a full update, each update cut into bodies of at
// most --body-limit bytes (encodeParts, PROTOCOL.md §7.6). Per case, DIR/CASE/ holds:
//   NNNN.bin   — one TileUpdate body each (§7.1: u32 request id, then the zlib bytes),
//                numbered from 0000 in the order they are applied;
//   meta.json  — "format" ("relay-bench-bodies/1"), "case", "source", "width", "height",
//                "frames" (frames encoded), "zlib_level", "body_limit", "bodies",
//                "body_bytes", "inflated_bytes", "updates" (one object per frame that
//                changed: "frame", "bodies" (the numbers of its .bin files), "inflated"),
//                and "final_rgba_sha256": the SHA-256 of the last frame as RGBA with alpha
//                255, which is what a browser's framebuffer holds after the last body.
// Every body is also decoded with RelayTileCodec's TileDecoder and compared with its frame.

extension CodecBenchmark {
    func writeBodies(to directory: String) throws {
        var cases: [(name: String, source: String, frames: [Framebuffer])] = []
        if let folder = self.frames {
            let trimmed = folder.hasSuffix("/") && folder.count > 1 ? String(folder.dropLast()) : folder
            let name = trimmed.split(separator: "/").last.map(String.init) ?? "frames"
            cases.append((name, "the PNG frames in \(folder), in name order", try Self.readFrames(in: folder)))
        } else {
            for item in Self.syntheticCases() {
                let sequence = (0...self.updates).map { item.frames[item.order[$0 % item.order.count]] }
                cases.append((item.name, "relay-bench codec's synthetic \(item.name) case", sequence))
            }
        }
        try Self.makeDirectory(directory)
        for item in cases {
            let folder = "\(directory)/\(item.name)"
            try Self.makeDirectory(folder)
            try Self.removeOldBodies(in: folder)
            let encoder = TileEncoder(compressionLevel: self.level)
            let decoder = TileDecoder()
            decoder.resize(width: item.frames[0].width, height: item.frames[0].height)
            var updates: [String] = []
            var count = 0
            var bodyBytes = 0
            var inflatedBytes = 0
            for (index, frame) in item.frames.enumerated() {
                let bodies = try encoder.encodeParts(
                    frame, requestID: UInt32(index + 1), fullRefresh: index == 0, maximumBodyLength: self.bodyLimit)
                if bodies.isEmpty { continue }
                var numbers: [String] = []
                for body in bodies {
                    try Self.writeFile("\(folder)/\(Self.bodyName(count))", Array(body.readableBytesView))
                    try decoder.apply(body)
                    numbers.append(String(count))
                    count += 1
                    bodyBytes += body.readableBytes
                }
                guard decoder.framebuffer == frame else {
                    throw ValidationError(
                        "\(item.name): frame \(index) decodes to other pixels than were encoded, a bug in RelayTileCodec; run `swift test --filter RelayTileCodecTests`"
                    )
                }
                let inflated = encoder.lastUpdateStatistics.inflatedBytes
                inflatedBytes += inflated
                updates.append("    {\"frame\": \(index), \"bodies\": [\(numbers.joined(separator: ", "))], \"inflated\": \(inflated)}")
            }
            let last = item.frames[item.frames.count - 1]
            let meta = """
                {
                  "format": "relay-bench-bodies/1",
                  "case": \(Self.jsonString(item.name)),
                  "source": \(Self.jsonString(item.source)),
                  "width": \(last.width),
                  "height": \(last.height),
                  "frames": \(item.frames.count),
                  "zlib_level": \(self.level),
                  "body_limit": \(self.bodyLimit),
                  "bodies": \(count),
                  "body_bytes": \(bodyBytes),
                  "inflated_bytes": \(inflatedBytes),
                  "final_rgba_sha256": "\(Self.rgbaDigest(last))",
                  "updates": [
                \(updates.joined(separator: ",\n"))
                  ]
                }

                """
            try Self.writeFile("\(folder)/meta.json", Array(meta.utf8))
            print(
                "\(item.name): \(item.frames.count) frames, \(updates.count) updates in \(count) bodies, \(bodyBytes) B (\(inflatedBytes) B inflated), in \(folder)"
            )
        }
    }

    static func bodyName(_ number: Int) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits + ".bin"
    }

    /// SHA-256 of the frame as RGBA with alpha 255, in hex.
    static func rgbaDigest(_ frame: Framebuffer) -> String {
        var rgba = [UInt8](repeating: 255, count: frame.pixels.count)
        for index in Swift.stride(from: 0, to: frame.pixels.count, by: 4) {
            rgba[index] = frame.pixels[index + 2]
            rgba[index + 1] = frame.pixels[index + 1]
            rgba[index + 2] = frame.pixels[index]
        }
        let hex: [Character] = Array("0123456789abcdef")
        var text = ""
        for byte in SHA256.hash(data: rgba) {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0F)])
        }
        return text
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20:
                let digits = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw ValidationError("cannot make the folder \(path): \(String(cString: strerror(errno))); check the path and its permissions")
        }
    }

    /// Removes a case folder's NNNN.bin files and meta.json from an earlier run.
    static func removeOldBodies(in folder: String) throws {
        guard let directory = opendir(folder) else {
            throw ValidationError("cannot open \(folder): \(String(cString: strerror(errno)))")
        }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            let stem = name.hasSuffix(".bin") ? name.dropLast(4) : ""
            if name == "meta.json" || (!stem.isEmpty && stem.allSatisfy(\.isNumber)) { names.append(name) }
        }
        closedir(directory)
        for name in names where unlink("\(folder)/\(name)") != 0 {
            throw ValidationError("cannot remove \(folder)/\(name) of an earlier run: \(String(cString: strerror(errno)))")
        }
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        guard let file = fopen(path, "wb") else {
            throw ValidationError("cannot write \(path): \(String(cString: strerror(errno))); check the folder and its permissions")
        }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        let closed = fclose(file)
        guard written == bytes.count, closed == 0 else {
            throw ValidationError("writing \(path) failed: \(String(cString: strerror(errno))); is the disk full?")
        }
    }
}
