import Foundation
import NIOCore
import RelayTestSupport
import Testing

@testable import RelayWire

// Keeps docs/PROTOCOL.md §10 and the codec in step: every hex vector in the document
// decodes to the message listed here and re-encodes to the same bytes, every invalid
// vector fails with the kind its heading names, and neither list can gain or lose a
// vector without the other.

@Suite("PROTOCOL.md test vectors")
struct ProtocolDocumentTests {
    /// The capabilities the §10 vectors carry (screenTiles, input, clipboard: 0x7), from
    /// before `glyphs` was assigned: still valid messages.
    static let documented: Capabilities = [.screenTiles, .input, .clipboard]

    /// The message each `#### Vector:` in PROTOCOL.md §10 must decode to.
    static let expectedMessages: [String: RelayMessage] = [
        "node-auth-connect": .nodeAuth(
            NodeAuth(
                node: "relay-2", agentAddress: "203.0.113.5:51234",
                request: .connect(hostID: "ho-aawvbeke34", companyID: "co-8h3kq2wz5n", engineer: "kim.minji", organization: "ACME", inBrowser: false))
        ),
        "node-auth-redeem": .nodeAuth(
            NodeAuth(
                node: "relay-2", agentAddress: "198.51.100.7:40022",
                request: .redeem(code: SupportCode(value: 42_917)!, hostName: "DESKTOP-7Q2 (customer PC at 198.51.100.7)"))
        ),
        "hello-viewer": .hello(
            Hello(role: .viewer, capabilities: Self.documented, software: "relay-agent/0.1.0")
        ),
        "hello-host-unknown-capability": .hello(
            Hello(role: .host, capabilities: Capabilities(rawValue: 0x8000_0007), software: "relay-agent/0.1.0 (linux)")
        ),
        "hello-ack": .helloAck(
            HelloAck(capabilities: Self.documented, maximumPayloadLength: 1_048_576, relayNode: "relay-seoul-1")
        ),
        "host-auth-support-code": .hostAuth(.supportCode(SupportCode(value: 42_917)!)),
        "host-auth-named-support-code": .hostAuth(.namedSupportCode(SupportCode(value: 42_917)!, machineName: "회계팀 PC")),
        "host-auth-enrolled": .hostAuth(
            .enrolled(hostID: Self.exampleHostID, secret: Self.exampleHostSecret)
        ),
        "host-auth-key": .hostAuth(.key(hostID: Self.exampleHostID)),
        "viewer-auth-key-new-support-code": .viewerAuth(.key(.newSupportCode)),
        "viewer-auth-key-connect": .viewerAuth(.key(.connect(hostID: Self.exampleHostID))),
        "viewer-auth-new-support-code": .viewerAuth(
            ViewerAuth(token: Self.exampleEngineerToken, request: .newSupportCode)
        ),
        "viewer-auth-connect": .viewerAuth(
            ViewerAuth(token: Self.exampleEngineerToken, request: .connect(hostID: Self.exampleHostID))
        ),
        "code-issued": .codeIssued(CodeIssued(code: SupportCode(value: 42_917)!, validForSeconds: 600)),
        "code-issued-confirm-security-code": .codeIssued(CodeIssued(code: SupportCode(value: 42_917)!, validForSeconds: 600, flags: .confirmSecurityCode)),
        "host-registered": .hostRegistered(HostRegistered(hostName: "회계팀 PC")),
        "paired-to-host-attended": .paired(
            Paired(
                sessionID: SessionID(high: 0x3f2a_9c41_7be0_4d15, low: 0x8a6e_02d7_c913_5b48),
                mode: .attended,
                peerCapabilities: Self.documented,
                peerName: "kim.minji",
                peerSoftware: "relay-agent/0.1.0",
                peerOrganization: "ACME 코리아"
            )
        ),
        "paired-to-viewer-unattended": .paired(
            Paired(
                sessionID: SessionID(high: 0x0000_0000_0000_0001, low: 0xffff_ffff_ffff_fffe),
                mode: .unattended,
                peerCapabilities: [.screenTiles, .input],
                peerName: "회계팀 PC",
                peerSoftware: "relay-agent/0.1.0 (linux)",
                peerOrganization: ""
            )
        ),
        "ping": .ping(Ping(nonce: 0x0123_4567_89ab_cdef)),
        "pong": .pong(Pong(nonce: 0x0123_4567_89ab_cdef)),
        "bye-normal": .bye(Bye(reason: .normal, text: "")),
        "bye-peer-left": .bye(Bye(reason: .peerLeft, text: "The viewer kim.minji left the session.")),
        "bye-declined": .bye(Bye(reason: .declined, text: "The customer declined the session.")),
        "error-unsupported-version": .error(
            ErrorMessage(
                code: .unsupportedVersion,
                message: "This relay speaks protocol version 1; update relay-agent."
            )
        ),
        "error-invalid-code": .error(
            ErrorMessage(
                code: .invalidCode,
                message: "지원 코드가 올바르지 않습니다. Ask the engineer for a new code."
            )
        ),
        "screen-init": .screenInit(ScreenInit(width: 1920, height: 1080, name: ":0")),
        "tile-update": .tileUpdate(TileUpdate(body: ByteBuffer(bytes: Self.solidTileBody))),
        "update-request-full-refresh": .updateRequest(UpdateRequest(requestID: 1, flags: .fullRefresh)),
        "update-request-incremental": .updateRequest(UpdateRequest(requestID: 0x0000_0102)),
        "pointer": .pointer(Pointer(x: 960, y: 540, buttons: .left)),
        "pointer-wheel-down": .pointer(Pointer(x: 0, y: 65_535, buttons: .wheelDown)),
        "key-down": .key(Key(keysym: 0xff0d, isDown: true)),
        "key-up": .key(Key(keysym: 0x0061, isDown: false)),
        "clipboard": .clipboard(Clipboard(text: "안녕하세요, 원격 지원입니다.")),
        "clipboard-empty": .clipboard(Clipboard(text: "")),
        "clipboard-bom": .clipboard(Clipboard(text: "\u{FEFF}hi")),
        "access-granted-full": .accessGranted(AccessGranted(flags: .inputAllowed)),
        "access-granted-view-only": .accessGranted(AccessGranted(flags: [])),
        "key-commit": .keyCommit(KeyCommit(version: 1, commitment: Self.bytes("f94d8e22a220567bbc6180f0827a2337f18b7165b02e39660ed51c873cc5cbd3"))),
        "key-share-host": .keyShare(
            KeyShare(
                version: 1, role: .host, ephemeralKey: Self.bytes("5dfedd3b6bd47f6fa28ee15d969d5bb0ea53774d488bdaf9df1c6e0124b3ef22"),
                identityKey: Self.bytes("8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"))),
        "sealed-clipboard": .sealed(Sealed(body: ByteBuffer(bytes: Self.bytes("ed355625023d6128a1ed6b0b7471bf66c8692e8247ae")))),
    ]

    static func bytes(_ hex: String) -> [UInt8] { RelayTestSupport.bytes(hex: hex) }

    /// §10's example credentials, in the forms the relay issues (`ho-…`, 43 characters of
    /// base64url, `en-….SECRET`); RelayServerTests checks the forms against real ones.
    static let exampleHostID = "ho-aawvbeke34"
    static let exampleHostSecret = "f-N2DayKZ44onEeXEdkX2Aj8RXAZZUWBLbqDzTGcl8k"
    static let exampleEngineerToken = "en-jyb24awwem.b0tj31Wb6tuYZPf2qqbkS3pd4GSSGTDZtIkMDlat-ys"

    /// Body 1 of Tile vector "solid" (§7.8), which the §10.2 tile-update vector carries.
    static let solidTileBody: [UInt8] = [
        0x00, 0x00, 0x00, 0x01, 0x78, 0x01, 0x62, 0x60, 0x61, 0x60, 0x62, 0x00, 0x02, 0x46, 0x30, 0xc9,
        0x00, 0xe4, 0xcd, 0x4c, 0x33, 0x06, 0x00, 0x00, 0x00, 0xff, 0xff,
    ]

    /// Every decoding error kind, so an invalid vector can only name a kind that exists.
    static let allKinds: [WireError.Kind] = [
        .truncatedFrame, .frameTooLarge, .unknownMessageType, .truncatedMessage, .trailingBytes, .invalidUTF8,
        .invalidField, .fieldTooLong,
    ]

    private let document: ProtocolDocument

    init() throws {
        self.document = try ProtocolDocument.load()
    }

    @Test("the document and this test list the same valid vectors")
    func sameVectorNames() {
        let documentNames = Set(self.document.vectors.map(\.name))
        let testNames = Set(Self.expectedMessages.keys)
        #expect(
            documentNames.subtracting(testNames).isEmpty,
            "in PROTOCOL.md but not in this test: \(documentNames.subtracting(testNames).sorted())"
        )
        #expect(
            testNames.subtracting(documentNames).isEmpty,
            "in this test but not in PROTOCOL.md: \(testNames.subtracting(documentNames).sorted())"
        )
        #expect(self.document.vectors.count == documentNames.count, "a vector name appears twice in PROTOCOL.md")
    }

    @Test("every message type has a valid vector")
    func everyTypeCovered() {
        let covered = Set(self.document.vectors.compactMap { Self.expectedMessages[$0.name]?.type })
        for type in MessageType.allCases {
            #expect(covered.contains(type), "no vector for \(type.name) (0x\(String(type.rawValue, radix: 16)))")
        }
    }

    @Test("the document has invalid vectors, each with a known kind and a unique name")
    func invalidVectorsAreWellFormed() {
        #expect(!self.document.invalidVectors.isEmpty)
        let kindNames = Set(Self.allKinds.map(\.description))
        for vector in self.document.invalidVectors {
            #expect(kindNames.contains(vector.kind), "\(vector.name): unknown kind \"\(vector.kind)\"")
        }
        let names = self.document.invalidVectors.map(\.name)
        #expect(Set(names).count == names.count, "an invalid vector name appears twice in PROTOCOL.md")
    }

    @Test("every valid vector decodes to its message and re-encodes to the same bytes")
    func validVectorsRoundTrip() {
        for vector in self.document.vectors {
            guard let expected = Self.expectedMessages[vector.name] else { continue }  // sameVectorNames reports it
            // One vector's failure is recorded and the others are still checked.
            do {
                var buffer = ByteBuffer(bytes: vector.bytes)
                guard let frame = try buffer.readFrame(maximumPayloadLength: Frame.defaultMaximumPayloadLength) else {
                    Issue.record("\(vector.name): not a whole frame")
                    continue
                }
                #expect(buffer.readableBytes == 0, "\(vector.name): \(buffer.readableBytes) bytes after the frame")
                #expect(frame.type == expected.type, "\(vector.name): type byte")
                #expect(try RelayMessage(frame) == expected, "\(vector.name): decoded value")
                let encoded = try Frame(expected)
                #expect(Array(encoded.bytes.readableBytesView) == vector.bytes, "\(vector.name): re-encoded bytes")
            } catch {
                Issue.record("\(vector.name): \(error)")
            }
        }
    }

    @Test("every invalid vector fails with the kind its heading names")
    func invalidVectorsFail() {
        for vector in self.document.invalidVectors {
            let error = Self.firstError(decoding: vector.bytes)
            #expect(error?.kind.description == vector.kind, "\(vector.name): got \(error.map(String.init(describing:)) ?? "no error")")
        }
    }

    /// §3: a leading ef bb bf is U+FEFF, kept as part of the text, never stripped.
    @Test("a byte-order mark is kept as text")
    func byteOrderMarkIsKept() throws {
        let vector = try #require(self.document.vectors.first { $0.name == "clipboard-bom" })
        var buffer = ByteBuffer(bytes: vector.bytes)
        let frame = try #require(try buffer.readFrame(maximumPayloadLength: Frame.defaultMaximumPayloadLength))
        guard case .clipboard(let clipboard) = try RelayMessage(frame) else {
            Issue.record("clipboard-bom does not decode as a Clipboard")
            return
        }
        #expect(Array(clipboard.text.utf8) == [0xef, 0xbb, 0xbf, 0x68, 0x69])
        #expect(clipboard.text.unicodeScalars.first == "\u{FEFF}")
        // In a str16 as well: a Bye text that starts with a BOM keeps it.
        var payload = ByteBuffer(bytes: [0x0a, 0x00, 0x00, 0x07, 0x00, 0x01, 0x00, 0x03, 0xef, 0xbb, 0xbf])
        let bye = try #require(try payload.readFrame(maximumPayloadLength: Frame.defaultMaximumPayloadLength))
        #expect(try RelayMessage(bye) == .bye(Bye(reason: .normal, text: "\u{FEFF}")))
    }

    @Test("hex blocks use the documented layout")
    func hexLayout() {
        for block in self.document.vectors.map(\.hexLines) + self.document.invalidVectors.map(\.hexLines) {
            #expect(!block.isEmpty)
            for (index, line) in block.enumerated() {
                let bytes = line.split(separator: " ", omittingEmptySubsequences: false)
                let isLast = index == block.count - 1
                #expect(isLast ? (1...16).contains(bytes.count) : bytes.count == 16, "line \"\(line)\"")
                #expect(
                    bytes.allSatisfy { $0.count == 2 && $0.allSatisfy { "0123456789abcdef".contains($0) } },
                    "line \"\(line)\""
                )
            }
        }
    }

    /// Feeds `bytes` to a receiver as a whole stream that then ends, returning the first
    /// error: from the frame header, from the end of the stream, or from the payload.
    private static func firstError(decoding bytes: [UInt8]) -> WireError? {
        var buffer = ByteBuffer(bytes: bytes)
        do {
            guard let frame = try buffer.readFrame(maximumPayloadLength: Frame.defaultMaximumPayloadLength) else {
                var decoder = FrameDecoder()
                _ = try decoder.decodeLast(buffer: &buffer, seenEOF: true)
                return nil
            }
            _ = try RelayMessage(frame)
            return nil
        } catch let error as WireError {
            return error
        } catch {
            Issue.record("not a WireError: \(error)")
            return nil
        }
    }
}

/// The vectors of PROTOCOL.md §10, as written there.
private struct ProtocolDocument {
    struct Vector {
        var name: String
        var hexLines: [String]
        var bytes: [UInt8]
    }

    struct InvalidVector {
        var name: String
        var kind: String
        var hexLines: [String]
        var bytes: [UInt8]
    }

    var vectors: [Vector] = []
    var invalidVectors: [InvalidVector] = []

    static let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // RelayWireTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // package root
        .appendingPathComponent("docs/PROTOCOL.md")

    static func load() throws -> ProtocolDocument {
        try ProtocolDocument(markdown: String(contentsOf: Self.url, encoding: .utf8))
    }

    struct FormatError: Error, CustomStringConvertible {
        var description: String
    }

    /// Parses each `#### Vector: name` and `#### Invalid: name (kind)` heading with the
    /// first ```hex block after it.
    init(markdown: String) throws {
        let lines = markdown.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
        }
        var index = 0
        while index < lines.count {
            let line = lines[index]
            index += 1
            let isValid = line.hasPrefix("#### Vector: ")
            guard isValid || line.hasPrefix("#### Invalid: ") else { continue }
            let title = line.dropFirst(isValid ? "#### Vector: ".count : "#### Invalid: ".count)
            // The hex block: the first fence after the heading, before the next heading.
            while index < lines.count, lines[index] != "```hex" {
                if lines[index].hasPrefix("#") { throw FormatError(description: "\(line): no ```hex block") }
                index += 1
            }
            index += 1
            var hexLines: [String] = []
            while index < lines.count, lines[index] != "```" {
                hexLines.append(lines[index])
                index += 1
            }
            guard index < lines.count else { throw FormatError(description: "\(line): hex block not closed") }
            index += 1
            var bytes: [UInt8] = []
            for token in hexLines.joined(separator: " ").split(separator: " ") {
                guard let byte = UInt8(token, radix: 16) else {
                    throw FormatError(description: "\(line): \"\(token)\" is not a hex byte")
                }
                bytes.append(byte)
            }
            if isValid {
                self.vectors.append(Vector(name: String(title), hexLines: hexLines, bytes: bytes))
            } else {
                guard title.hasSuffix(")"), let open = title.lastIndex(of: "(") else {
                    throw FormatError(description: "\(line): expected \"name (kind)\"")
                }
                let name = title[..<open].trimmingCharacters(in: .whitespaces)
                let kind = String(title[title.index(after: open)..<title.index(before: title.endIndex)])
                self.invalidVectors.append(InvalidVector(name: name, kind: kind, hexLines: hexLines, bytes: bytes))
            }
        }
    }
}
