import Crypto
import Foundation
import NIOCore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelaySecureChannel

/// PROTOCOL.md §10.4: the handshake run from the document's fixed keys gives the
/// document's bytes, every one of them.
@Suite struct EndToEndVectorTests {
    /// The `name: value` lines of the "E2E vector: fixed-keys" block.
    static func vector() throws -> [String: String] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/PROTOCOL.md")
        let document = try String(contentsOf: url, encoding: .utf8)
        guard let heading = document.range(of: "#### E2E vector: fixed-keys"),
            let start = document.range(of: "```text\n", range: heading.upperBound..<document.endIndex),
            let end = document.range(of: "```", range: start.upperBound..<document.endIndex)
        else { throw VectorMissing() }
        var values: [String: String] = [:]
        for line in document[start.upperBound..<end.lowerBound].split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            values[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return values
    }

    struct VectorMissing: Error, CustomStringConvertible {
        var description: String { "PROTOCOL.md has no \"E2E vector: fixed-keys\" block with a text code block" }
    }

    static func bytes(_ hex: String?) -> [UInt8] { RelayTestSupport.bytes(hex: hex ?? "") }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
    }

    @Test func theDocumentsHandshakeIsReproducedByteForByte() throws {
        let v = try Self.vector()
        let id = Self.bytes(v["session-id"])
        #expect(id.count == 16)
        let sessionID = SessionID(
            high: id[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, low: id[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
        var host = SecureHandshake(
            .init(role: .host, identity: try .init(rawRepresentation: Self.bytes(v["host-identity-private"])), name: v["host-name"] ?? "", organization: ""),
            sessionID: sessionID, ephemeral: try .init(rawRepresentation: Self.bytes(v["host-ephemeral-private"])))
        var viewer = SecureHandshake(
            .init(
                role: .viewer, identity: try .init(rawRepresentation: Self.bytes(v["viewer-identity-private"])), name: v["viewer-name"] ?? "",
                organization: v["viewer-organization"] ?? ""),
            sessionID: sessionID, ephemeral: try .init(rawRepresentation: Self.bytes(v["viewer-ephemeral-private"])))

        let commit = try viewer.start()
        #expect(Self.hex(commit[0].bytes.readableBytesView) == v["key-commit-frame"])
        guard case .send(let hostShare) = try host.received(commit[0]) else { throw VectorMissing() }
        #expect(Self.hex(hostShare[0].bytes.readableBytesView) == v["host-key-share-frame"])
        guard case .send(let viewerFrames) = try viewer.received(hostShare[0]) else { throw VectorMissing() }
        #expect(Self.hex(viewerFrames[0].bytes.readableBytesView) == v["viewer-key-share-frame"])
        #expect(Self.hex(viewerFrames[1].bytes.readableBytesView) == v["viewer-identity-record"])
        guard case .send(let hostIdentity) = try host.received(viewerFrames[0]) else { throw VectorMissing() }
        #expect(Self.hex(hostIdentity[0].bytes.readableBytesView) == v["host-identity-record"])
        guard case .established(_, var h) = try host.received(viewerFrames[1]), case .established(_, let vw) = try viewer.received(hostIdentity[0]) else {
            throw VectorMissing()
        }
        #expect(Self.hex(h.secrets.transcriptHash) == v["transcript-hash"])
        #expect(h.secrets.hostToViewer.withUnsafeBytes { Self.hex($0) } == v["key-host-to-viewer"])
        #expect(h.secrets.viewerToHost.withUnsafeBytes { Self.hex($0) } == v["key-viewer-to-host"])
        #expect(h.secrets.shortAuthenticationString == v["short-authentication-string"])
        #expect(vw.secrets.shortAuthenticationString == v["short-authentication-string"])
        let shared = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Self.bytes(v["host-ephemeral-private"]))
            .sharedSecretFromKeyAgreement(with: .init(rawRepresentation: Self.bytes(v["viewer-key-share-frame"]).dropFirst(6).prefix(32)))
        #expect(shared.withUnsafeBytes { Self.hex($0) } == v["x25519-shared-secret"])
        let clipboard = try h.sealer.seal(.clipboard(Clipboard(text: "hello")))
        #expect(Self.hex(clipboard.bytes.readableBytesView) == v["host-record-1-clipboard-hello"])
    }
}
