import Crypto
import NIOCore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelaySecureChannel

/// The handshake and the record layer as pure values, both sides back to back (PROTOCOL.md §5.3).
@Suite struct HandshakeTests {
    static let sessionID = SessionID(high: 0x0011_2233_4455_6677, low: 0x8899_AABB_CCDD_EEFF)

    static func local(_ role: Role, seed: UInt8, name: String, organization: String = "") -> SecureHandshake.Local {
        SecureHandshake.Local(role: role, identity: try! .init(rawRepresentation: [UInt8](repeating: seed, count: 32)), name: name, organization: organization)
    }

    static func ephemeral(_ seed: UInt8) -> Curve25519.KeyAgreement.PrivateKey {
        try! .init(rawRepresentation: [UInt8](repeating: seed, count: 32))
    }

    /// Runs both machines to the end, passing each frame to the other side; returns both results.
    static func run(
        host: inout SecureHandshake, viewer: inout SecureHandshake
    ) throws -> (host: SecureHandshake.Established, viewer: SecureHandshake.Established) {
        var toHost = try viewer.start()
        #expect(try host.start().isEmpty, "the host speaks only after the viewer's commitment")
        var toViewer: [Frame] = []
        var hostDone: SecureHandshake.Established?
        var viewerDone: SecureHandshake.Established?
        while hostDone == nil || viewerDone == nil {
            guard !toHost.isEmpty || !toViewer.isEmpty else { throw TestFailure("the handshake stalled") }
            for frame in toHost {
                switch try host.received(frame) {
                case .send(let frames): toViewer += frames
                case .established(let frames, let done):
                    toViewer += frames
                    hostDone = done
                }
            }
            toHost = []
            for frame in toViewer {
                switch try viewer.received(frame) {
                case .send(let frames): toHost += frames
                case .established(let frames, let done):
                    toHost += frames
                    viewerDone = done
                }
            }
            toViewer = []
        }
        return (hostDone!, viewerDone!)
    }

    @Test func bothSidesAgreeOnKeysAndCodeAndProveTheirKeys() throws {
        var host = SecureHandshake(Self.local(.host, seed: 1, name: "FRONT-DESK"), sessionID: Self.sessionID)
        var viewer = SecureHandshake(Self.local(.viewer, seed: 2, name: "kim.minji", organization: "ACME 코리아"), sessionID: Self.sessionID)
        var (h, v) = try Self.run(host: &host, viewer: &viewer)
        #expect(h.secrets.shortAuthenticationString == v.secrets.shortAuthenticationString)
        #expect(h.secrets.shortAuthenticationString.wholeMatch(of: /\d{3} \d{3}/) != nil)
        #expect(h.peer.name == "kim.minji" && h.peer.organization == "ACME 코리아")
        #expect(h.peer.identityKey == Array(Self.local(.viewer, seed: 2, name: "").identity.publicKey.rawRepresentation))
        #expect(v.peer.name == "FRONT-DESK" && v.peer.identityKey == Array(Self.local(.host, seed: 1, name: "").identity.publicKey.rawRepresentation))
        // Records flow both ways, in order, after each side's Identity (record 0).
        for index in 1...3 {
            let clipboard = try h.sealer.seal(.clipboard(Clipboard(text: "secret \(index)")))
            let opened = try v.opener.open(clipboard)
            #expect(opened.type == MessageType.clipboard.rawValue && String(buffer: opened.payload) == "secret \(index)")
            let key = try v.sealer.seal(.key(Key(keysym: 0x61, isDown: true)))
            #expect(try h.opener.open(key).type == MessageType.key.rawValue)
        }
        #expect(h.sealer.sequence == 4 && v.opener.sequence == 4)
    }

    /// Sessions differ: the same keys in another session give other keys and another code.
    @Test func theSessionIDIsBoundIntoTheKeys() throws {
        func code(_ id: SessionID) throws -> String {
            var host = SecureHandshake(Self.local(.host, seed: 1, name: "h"), sessionID: id, ephemeral: Self.ephemeral(3))
            var viewer = SecureHandshake(Self.local(.viewer, seed: 2, name: "v"), sessionID: id, ephemeral: Self.ephemeral(4))
            return try Self.run(host: &host, viewer: &viewer).host.secrets.shortAuthenticationString
        }
        #expect(try code(Self.sessionID) == code(Self.sessionID))
        #expect(try code(Self.sessionID) != code(SessionID(high: 1, low: 2)))
    }

    @Test func aShareThatDoesNotMatchItsCommitmentIsRefused() throws {
        var host = SecureHandshake(Self.local(.host, seed: 1, name: "h"), sessionID: Self.sessionID)
        var viewer = SecureHandshake(Self.local(.viewer, seed: 2, name: "v"), sessionID: Self.sessionID)
        var other = SecureHandshake(Self.local(.viewer, seed: 9, name: "mallory"), sessionID: Self.sessionID)
        _ = try other.start()
        let commit = try viewer.start()
        guard case .send(let hostShare) = try host.received(commit[0]) else { throw TestFailure("host: expected its share") }
        guard case .send(let forged) = try other.received(hostShare[0]) else { throw TestFailure("expected a share") }
        // A share from another key pair than the one the commitment names.
        let error = #expect(throws: SecureChannelError.self) { _ = try host.received(forged[0]) }
        #expect(error?.kind == .handshakeFailed && error?.description.contains("does not match the commitment") == true)
    }

    @Test func messagesOutOfTurnAndPlaintextPeerMessagesAreRefused() throws {
        var host = SecureHandshake(Self.local(.host, seed: 1, name: "h"), sessionID: Self.sessionID)
        _ = try host.start()
        let screen = try Frame(.screenInit(ScreenInit(width: 10, height: 10, name: ":0")))
        let error = #expect(throws: SecureChannelError.self) { _ = try host.received(screen) }
        #expect(error?.kind == .peerWithoutEncryption)
        #expect(error?.description.contains("the other side does not encrypt end to end; update relay-agent") == true)
        var viewer = SecureHandshake(Self.local(.viewer, seed: 2, name: "v"), sessionID: Self.sessionID)
        _ = try viewer.start()
        let commit = try Frame(.keyCommit(KeyCommit(version: 1, commitment: [UInt8](repeating: 7, count: 32))))
        #expect(throws: SecureChannelError.self) { _ = try viewer.received(commit) }
        var newer = SecureHandshake(Self.local(.host, seed: 1, name: "h"), sessionID: Self.sessionID)
        _ = try newer.start()
        let future = try Frame(.keyCommit(KeyCommit(version: 2, commitment: [UInt8](repeating: 7, count: 32))))
        #expect((#expect(throws: SecureChannelError.self) { _ = try newer.received(future) })?.kind == .unsupportedVersion)
    }

    /// The host's own share sent back to it (a relay reflecting it) is refused by its role.
    @Test func aReflectedShareIsRefused() throws {
        var host = SecureHandshake(Self.local(.host, seed: 1, name: "h"), sessionID: Self.sessionID)
        var viewer = SecureHandshake(Self.local(.viewer, seed: 2, name: "v"), sessionID: Self.sessionID)
        let commit = try viewer.start()
        guard case .send(let hostShare) = try host.received(commit[0]) else { throw TestFailure("host: expected its share") }
        #expect(throws: SecureChannelError.self) { _ = try host.received(hostShare[0]) }
    }

    @Test func aLowOrderKeyIsRefused() throws {
        var viewer = SecureHandshake(Self.local(.viewer, seed: 2, name: "v"), sessionID: Self.sessionID)
        _ = try viewer.start()
        let identity = Array(Self.local(.host, seed: 1, name: "h").identity.publicKey.rawRepresentation)
        let zero = try Frame(.keyShare(KeyShare(version: 1, role: .host, ephemeralKey: [UInt8](repeating: 0, count: 32), identityKey: identity)))
        #expect((#expect(throws: SecureChannelError.self) { _ = try viewer.received(zero) })?.kind == .handshakeFailed)
    }

    /// The record layer refuses what a relay could do to records: flip, replay, reorder,
    /// drop, splice the other direction's record in.
    @Test func recordsRefuseEveryChangeInTransit() throws {
        var host = SecureHandshake(Self.local(.host, seed: 1, name: "h"), sessionID: Self.sessionID)
        var viewer = SecureHandshake(Self.local(.viewer, seed: 2, name: "v"), sessionID: Self.sessionID)
        let (h, v) = try Self.run(host: &host, viewer: &viewer)
        var sealer = h.sealer
        let records = try (0..<4).map { try sealer.seal(.clipboard(Clipboard(text: "record \($0)"))) }
        var viewerSealer = v.sealer
        let reverse = try viewerSealer.seal(.clipboard(Clipboard(text: "the other way")))

        func rejected(_ frames: [Frame]) -> Bool {
            var opener = v.opener
            do {
                for frame in frames { _ = try opener.open(frame) }
                return false
            } catch {
                return error.kind == .recordRejected && error.description.contains("altered, replayed, reordered or dropped")
            }
        }
        var flipped = records[0].payload
        flipped.setInteger(flipped.getInteger(at: 3, as: UInt8.self)! ^ 0x01, at: 3)
        #expect(rejected([try Frame(type: .sealed, payload: flipped)]), "a flipped bit")
        var tag = records[0].payload
        tag.setInteger(tag.getInteger(at: tag.readableBytes - 1, as: UInt8.self)! ^ 0x80, at: tag.readableBytes - 1)
        #expect(rejected([try Frame(type: .sealed, payload: tag)]), "a flipped tag bit")
        #expect(rejected([records[0], records[0]]), "a replay")
        #expect(rejected([records[1], records[0]]), "a reorder")
        #expect(rejected([records[0], records[2]]), "a drop")
        #expect(rejected([reverse]), "the other direction's record")
        var truncated = records[0].payload
        truncated.moveWriterIndex(to: truncated.writerIndex - 1)
        #expect(rejected([try Frame(type: .sealed, payload: truncated)]), "a truncation")
        #expect(!rejected(records), "in order, untouched")
    }
}
