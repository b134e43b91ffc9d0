// Inputs found by fuzz/'s FuzzTileDecoder (fuzz/README.md), replayed through the same
// checks as the harness, so that a finding fixed once stays fixed without a fuzz build:
// the literal findings below, and every file under fuzz/regressions/FuzzTileDecoder/.
// The other targets' findings replay in RelayWireTests (FuzzResultTests).
//
// The check is the harness's (fuzz/Sources/FuzzTileDecoder/FuzzTileDecoder.swift),
// restated with #expect: the harness traps, a test records a failure and goes on.

import Foundation
import NIOCore
import Testing

@testable import RelayTileCodec

@Suite struct TileDecoderFuzzResultTests {
    /// Findings kept inline: (what went wrong, the minimised input). Empty while the fuzz
    /// runs have found nothing (see fuzz/README.md "Long runs").
    static let findings: [(name: String, bytes: [UInt8])] = []

    /// fuzz/regressions/FuzzTileDecoder/ in this checkout, found from this file's path.
    static let regressionsFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz/regressions/FuzzTileDecoder")

    /// Every file in the folder (not README.md), sorted by name.
    static func regressionFiles() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: Self.regressionsFolder.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted()
            .map { Self.regressionsFolder.appendingPathComponent($0).path }
    }

    @Test func regressionsFolderExists() {
        var isDirectory: ObjCBool = false
        let path = Self.regressionsFolder.path
        #expect(FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue, "missing \(path)")
    }

    @Test(arguments: Self.regressionFiles())
    func regression(path: String) throws {
        Self.checkTileDecoder([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    @Test(arguments: Self.findings.map(\.bytes))
    func finding(bytes: [UInt8]) {
        Self.checkTileDecoder(bytes)
    }

    /// The check runs its whole course on valid input.
    @Test func checkRunsOnValidInput() {
        // A 3×2 framebuffer and no bodies: the encoder round trip still runs.
        Self.checkTileDecoder([0x02, 0x01])
    }

    /// FuzzTileDecoder: bytes 0 and 1 are width − 1 and height − 1 (mod 64), then bodies,
    /// each a u16 big-endian length and its bytes. A rejected body leaves the framebuffer
    /// as it was, a success keeps its size, and the encoder carries the final image
    /// losslessly (full, then incremental).
    static func checkTileDecoder(_ input: [UInt8]) {
        guard input.count >= 2 else { return }
        let width = Int(input[0] % 64) + 1
        let height = Int(input[1] % 64) + 1
        let decoder = TileDecoder(maximumInflatedBytes: 1 << 20)
        decoder.resize(width: width, height: height)
        var offset = 2
        while offset < input.count {
            var length = input.count - offset
            if input.count - offset >= 2 {
                length = min(Int(input[offset]) << 8 | Int(input[offset + 1]), input.count - offset - 2)
                offset += 2
            }
            let body = ByteBuffer(bytes: input[offset..<(offset + length)])
            offset += length
            let before = decoder.framebuffer
            do {
                try decoder.apply(body)
            } catch {
                #expect(decoder.framebuffer == before, "\(error) changed the framebuffer")
                break
            }
            #expect(decoder.framebuffer?.width == width && decoder.framebuffer?.height == height, "the size changed")
        }
        guard var image = decoder.framebuffer else {
            Issue.record("resize left no framebuffer")
            return
        }
        let encoder = TileEncoder()
        let viewer = TileDecoder()
        viewer.resize(width: width, height: height)
        do {
            try viewer.apply(#require(try encoder.encode(image, requestID: 1, fullRefresh: true)))
            #expect(viewer.framebuffer == image, "a full update did not reproduce the image")
            image.setRGB(image.rgb(x: width / 2, y: height / 2) ^ 0x00FF_FFFF, x: width / 2, y: height / 2)
            try viewer.apply(#require(try encoder.encode(image, requestID: 2, fullRefresh: false)))
            #expect(viewer.framebuffer == image, "an incremental update did not reproduce the image")
        } catch {
            Issue.record("the encoder's own updates failed to decode: \(error)")
        }
    }
}
