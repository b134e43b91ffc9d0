import Foundation
import NIOCore
import RelayStore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// docs/PROTOCOL.md read as an outside implementer reads it: each test takes one statement
/// of the document (its section is named) and checks it against a real relay, byte by byte
/// with ``RawAgent``, not through the agent library, which could smooth a difference over.
/// The vectors of §10 are checked by RelayWireTests/ProtocolDocumentTests; these check what
/// the relay does with them (issue 10, item 15). The statements about deadlines and
/// revocation are checked on the relay's own clock, in ProtocolConformanceInMemoryTests.
@Suite(.timeLimit(.minutes(1))) struct ProtocolConformanceTests {
    // MARK: §5.1.1 Hello comes first

    /// §5.1.1, §5.1.8, §8.2: Ping is allowed from HelloAck on; as the first frame it is
    /// unexpected (the relay used to answer it with Pong).
    @Test func pingBeforeHelloIsUnexpected() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            try await agent.send(.ping(Ping(nonce: 7)))
            try await agent.expectError(.unexpectedMessage, "Ping as the first frame")
        }
    }

    /// §5.1.1, §8.2: Pong as the first frame, likewise.
    @Test func pongBeforeHelloIsUnexpected() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            try await agent.send(.pong(Pong(nonce: 7)))
            try await agent.expectError(.unexpectedMessage, "Pong as the first frame")
        }
    }

    /// §5.1.10, §8.2: Bye is accepted in every state, even as the first frame, and the
    /// relay closes without an answer.
    @Test func byeBeforeHelloClosesWithoutAnAnswer() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            try await agent.send(.bye(Bye(reason: .normal, text: "changed my mind")))
            #expect(try await agent.closesWithNothingMore(), "the relay must close without a frame")
        }
    }

    /// §5.1.1, §5.1.3, §8.2: HostAuth before Hello.
    @Test func hostAuthBeforeHelloIsUnexpected() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            try await agent.send(.hostAuth(.supportCode(SupportCode(value: 42_917)!)))
            try await agent.expectError(.unexpectedMessage, "HostAuth as the first frame")
        }
    }

    /// §5.1.1: a version other than 1 gets unsupported_version, whatever the rest of the
    /// payload holds (a future version may lay Hello out differently after the version).
    @Test func helloOfAnotherVersionIsUnsupportedWhateverItsLayout() async throws {
        try await TestRelay.with { relay in
            let sameLayout = try await RawAgent.connect(to: relay)
            try await sameLayout.send(.hello(Hello(version: 2, role: .viewer, capabilities: .all, software: "relay-agent/2.0")))
            try await sameLayout.expectError(.unsupportedVersion, "Hello version 2, version 1 layout")

            let otherLayout = try await RawAgent.connect(to: relay)
            try await otherLayout.write(Self.frame(0x01, [0x00, 0x02, 0xff, 0x01]))  // version 2, then bytes v1 cannot read
            try await otherLayout.expectError(.unsupportedVersion, "Hello version 2, another layout")
        }
    }

    /// §5.1.1, §6.3: an unknown role in a version 1 Hello is an invalid field.
    @Test func helloWithAnUnknownRoleIsMalformed() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            try await agent.write(Self.frame(0x01, [0x00, 0x01, 0x03, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01, 0x78]))
            try await agent.expectError(.malformedMessage, "Hello with role 3")
        }
    }

    /// §5.1.1, §8.2 "Order of checks" step 5: the version matters for the first frame only;
    /// a second Hello is unexpected whatever version it names.
    @Test func aSecondHelloIsUnexpectedWhateverItsVersion() async throws {
        try await TestRelay.with { relay in
            for version: UInt16 in [1, 2] {
                let agent = try await RawAgent.connect(to: relay)
                _ = try await agent.hello(.host)
                try await agent.send(.hello(Hello(version: version, role: .host, capabilities: .all, software: "again")))
                try await agent.expectError(.unexpectedMessage, "a second Hello of version \(version)")
            }
        }
    }

    // MARK: §5.1.2 HelloAck

    /// §5.1.2: HelloAck is version 1, echoes the Hello's capabilities unchanged (unassigned
    /// bits included), announces the relay's payload limit and names the node.
    @Test func helloAckEchoesTheCapabilitiesAndAnnouncesTheLimit() async throws {
        try await TestRelay.with({ $0.maximumPayloadLength = 300_000 }) { relay in
            for raw: UInt32 in [0x8000_0005, 0, Capabilities.all.rawValue] {
                let agent = try await RawAgent.connect(to: relay)
                let ack = try await agent.hello(.viewer, capabilities: Capabilities(rawValue: raw))
                #expect(ack.version == 1)
                #expect(ack.capabilities.rawValue == raw, "capabilities 0x\(String(raw, radix: 16)) must come back unchanged")
                #expect(ack.maximumPayloadLength == 300_000)
                #expect(ack.relayNode == "test-node")
                await agent.close()
            }
        }
    }

    // MARK: §4, §6.3 Unknown types

    /// §4, §6.3: an unassigned type is `unknown message type`, answered with
    /// malformed_message: before Hello, and while paired in the peer range too (the relay
    /// does not forward unassigned peer types; the peer gets Bye(protocol_error)).
    @Test func anUnknownTypeIsMalformedInEveryRange() async throws {
        try await TestRelay.with { relay in
            let stranger = try await RawAgent.connect(to: relay)
            try await stranger.write(Self.header(0x0d, length: 0))
            try await stranger.expectError(.malformedMessage, "type 0x0d before Hello")

            let (host, viewer, _, _) = try await Self.pairUnattended(relay)
            var frame = Self.header(0x4A, length: 1)
            frame.writeInteger(UInt8(0))
            try await host.write(frame)
            try await host.expectError(.malformedMessage, "type 0x4A while paired")
            // Not forwarded: the viewer's next frame is the relay's Bye.
            try await viewer.expectBye(.protocolError, "the viewer of a host that sent type 0x4A")
        }
    }

    // MARK: §8.2 Order of checks (and §2.1, §9)

    /// §8.2 step 1 before step 2: a header with an unknown type and a huge length is
    /// malformed_message, not frame_too_large.
    @Test func theTypeIsCheckedBeforeTheLength() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            try await agent.write(Self.header(0x0d, length: 0xFF_FFFF))
            try await agent.expectError(.malformedMessage, "0c ff ff ff")
        }
    }

    /// §9, §8.2 step 2: before authentication a relay-control payload may be 4,096 bytes;
    /// a header announcing 4,097 is refused at once, before any payload is sent.
    @Test func relayControlFramesBeforeAuthenticationAreLimitedTo4096Bytes() async throws {
        try await TestRelay.with({ $0.handshakeTimeout = .seconds(60) }) { relay in
            let exact = try await RawAgent.connect(to: relay)
            // 2 + 1 + 4 + 2 + 4,087 = 4,096 payload bytes.
            let hello = Hello(role: .host, capabilities: .all, software: String(repeating: "x", count: 4_087))
            let frame = try Frame(.hello(hello))
            #expect(frame.payloadLength == 4_096)
            try await exact.write(frame.bytes)
            guard case .helloAck = try await exact.next("HelloAck to a 4,096-byte Hello") else {
                throw TestFailure("a 4,096-byte Hello must be accepted")
            }
            await exact.close()

            let over = try await RawAgent.connect(to: relay)
            try await over.write(Self.header(MessageType.hello.rawValue, length: 4_097))
            let error = try await over.expectError(.frameTooLarge, "a Hello header announcing 4,097 bytes")
            #expect(error?.message.contains("4096") == true)
        }
    }

    /// §8.2 step 2 before step 5: an oversized HostAuth before Hello is frame_too_large.
    @Test func theLengthIsCheckedBeforeTheState() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            try await agent.write(Self.header(MessageType.hostAuth.rawValue, length: 5_000))
            try await agent.expectError(.frameTooLarge, "a 5,000-byte HostAuth header before Hello")
        }
    }

    /// §8.2 step 4 before step 5: a HostAuth with method 9 before Hello is malformed.
    @Test func thePayloadIsCheckedBeforeTheState() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            try await agent.write(Self.frame(MessageType.hostAuth.rawValue, [0x09]))
            try await agent.expectError(.malformedMessage, "HostAuth method 9 before Hello")
        }
    }

    /// §8.2 step 4's exception: a Hello of version 2 with role 9 is unsupported_version,
    /// not malformed_message.
    @Test func theVersionIsCheckedBeforeTheRestOfHello() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            try await agent.write(Self.frame(0x01, [0x00, 0x02, 0x09, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00]))
            try await agent.expectError(.unsupportedVersion, "Hello version 2, role 9")
        }
    }

    /// §8.2 step 3: a peer-message header before Paired is unexpected as soon as the header
    /// is in; the relay does not wait for the 100,000 payload bytes (never sent here).
    @Test func aPeerHeaderBeforePairedIsUnexpectedAtOnce() async throws {
        try await TestRelay.with({ $0.handshakeTimeout = .seconds(60) }) { relay in
            let agent = try await RawAgent.connect(to: relay)
            _ = try await agent.hello(.host)
            try await agent.write(Self.header(MessageType.tileUpdate.rawValue, length: 100_000))
            try await agent.expectError(.unexpectedMessage, "a TileUpdate header before Paired")
        }
    }

    /// §8.2 step 2 before step 3: a peer header over the payload limit is frame_too_large,
    /// even where a peer message would be unexpected anyway.
    @Test func aPeerHeaderOverTheLimitIsTooLargeBeforeItIsUnexpected() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            try await agent.write(Self.header(MessageType.tileUpdate.rawValue, length: 2 << 20))
            try await agent.expectError(.frameTooLarge, "a 2 MiB TileUpdate header before Hello")
        }
    }

    /// §5.1.2, §9: once authenticated, relay-control frames take the announced limit: a
    /// 5,000-byte Ping is then malformed (trailing bytes), no longer too large.
    @Test func afterAuthenticationRelayControlFramesTakeTheAnnouncedLimit() async throws {
        try await TestRelay.with { relay in
            var ping = Self.header(MessageType.ping.rawValue, length: 5_000)
            ping.writeRepeatingByte(0, count: 5_000)

            let registered = try await RawAgent.connect(to: relay)
            _ = try await registered.hello(.host)
            try await registered.send(.hostAuth(.enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret)))
            guard case .hostRegistered = try await registered.next("HostRegistered") else { throw TestFailure("expected HostRegistered") }
            try await registered.write(ping)
            let error = try await registered.expectError(.malformedMessage, "a 5,000-byte Ping after HostRegistered")
            #expect(error?.message.contains("trailing bytes") == true)

            let unauthenticated = try await RawAgent.connect(to: relay)
            _ = try await unauthenticated.hello(.host)
            try await unauthenticated.write(ping)
            try await unauthenticated.expectError(.frameTooLarge, "a 5,000-byte Ping before authentication")
        }
    }

    // MARK: §5.1.8 Ping, §5.1.11 Error

    /// §5.1.8: from HelloAck on, a Ping is answered with a Pong of the same nonce in every
    /// state, and never forwarded to the peer.
    @Test func pingIsAnsweredInEveryStateAfterHelloAck() async throws {
        try await TestRelay.with { relay in
            let waiting = try await RawAgent.connect(to: relay)
            _ = try await waiting.hello(.viewer)
            try await waiting.expectPong(to: 0xFFFF_FFFF_FFFF_FFFF, "before authentication")

            let (host, viewer, _, _) = try await Self.pairUnattended(relay)
            try await host.expectPong(to: 1, "paired host")
            try await viewer.expectPong(to: 2, "paired viewer")
            // Not forwarded: what the host sends next is the next thing the viewer reads.
            try await host.send(.clipboard(Clipboard(text: "after the ping")))
            guard case .clipboard(let clipboard) = try await viewer.nextPeerMessage("Clipboard") else {
                throw TestFailure("the viewer expected the host's Clipboard next")
            }
            #expect(clipboard.text == "after the ping")
        }
    }

    /// §5.1.11: an agent never sends Error; one that does gets unexpected_message.
    @Test func anErrorFromAnAgentIsUnexpected() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            _ = try await agent.hello(.viewer)
            try await agent.send(.error(ErrorMessage(code: .internalError, message: "agents do not send this")))
            try await agent.expectError(.unexpectedMessage, "Error from an agent")
        }
    }

    // MARK: §8.6 Ending a session

    /// §8.2, §8.6: relay control other than Ping, Pong and Bye after Paired: the sender gets
    /// unexpected_message, the other agent Bye(protocol_error).
    @Test func relayControlAfterPairedIsAProtocolError() async throws {
        try await TestRelay.with { relay in
            let (host, viewer, _, _) = try await Self.pairUnattended(relay)
            try await viewer.send(.viewerAuth(ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)))
            try await viewer.expectError(.unexpectedMessage, "ViewerAuth while paired")
            try await host.expectBye(.protocolError, "the host of a viewer that broke the protocol")
        }
    }

    /// §5.1.10, §8.6: Bye from a paired agent: no answer to it; the other agent gets
    /// Bye(peer_left) with a text naming who left and carrying the agent's own text.
    @Test func byeFromAPairedAgentReachesThePeerAsPeerLeft() async throws {
        try await TestRelay.with { relay in
            let (host, viewer, _, _) = try await Self.pairUnattended(relay)
            try await viewer.send(.bye(Bye(reason: .normal, text: "The engineer closed the viewer.")))
            #expect(try await viewer.closesWithNothingMore(), "Bye is not answered")
            let bye = try await host.expectBye(.peerLeft, "the host after the viewer's Bye")
            #expect(bye?.text.contains("the engineer") == true)
            #expect(bye?.text.contains("The engineer closed the viewer.") == true)
        }
    }

    /// §5.1.10, §6.2, §8.6: the host's Bye(declined) reaches the viewer as Bye(declined)
    /// and is the session's end reason in the usage history.
    @Test func declinedReachesTheViewerAsDeclined() async throws {
        try await TestRelay.with { relay in
            let (host, viewer, _, _) = try await Self.pairUnattended(relay)
            try await host.send(.bye(Bye(reason: .declined, text: "The customer declined the session.")))
            let message = try await viewer.next("the viewer's Bye after the host declined")
            guard case .bye(let bye) = message else { throw TestFailure("expected a Bye, got \(message.type.name)") }
            #expect(bye.text.contains("The customer declined the session."))
            let recorded = await eventually { (try? Self.endReasons(relay))?.first == .declined }
            #expect(recorded, "the usage record must end with declined")
            #expect(bye.reason == .declined)
        }
    }

    // MARK: §5.1.7 Paired

    /// §5.1.7: Paired names the peer from the relay's records: the engineer's login and
    /// company to the host, the host's enrolled name and company to the viewer.
    @Test func pairedNamesThePeerFromTheRelaysRecords() async throws {
        try await TestRelay.with { relay in
            let (host, viewer, toHost, toViewer) = try await Self.pairUnattended(relay)
            #expect(toHost.sessionID == toViewer.sessionID)
            #expect(toHost.mode == .unattended && toViewer.mode == .unattended)
            #expect(toHost.peerName == "kim.minji")
            #expect(toViewer.peerName == "회계팀 PC-03")
            #expect(toHost.peerSoftware == "conformance-viewer" && toViewer.peerSoftware == "conformance-host")
            #expect(toHost.peerCapabilities == .all && toViewer.peerCapabilities == .all)
            #expect(toHost.peerOrganization == "ACME 코리아")
            #expect(toViewer.peerOrganization == "ACME 코리아")
            await host.close()
            await viewer.close()
        }
    }

    /// §5.1.7: attended, the host still learns the engineer's company; the viewer gets an
    /// empty organization, since an attended host belongs to no company.
    @Test func attendedPairedCarriesTheEngineersCompanyToTheHost() async throws {
        try await TestRelay.with { relay in
            let (toHost, toViewer) = try await Self.pairAttended(relay, machineName: "DESKTOP-7Q2")
            #expect(toHost.mode == .attended && toViewer.mode == .attended)
            #expect(toHost.peerName == "kim.minji")
            #expect(toHost.peerOrganization == "ACME 코리아")
            #expect(toViewer.peerOrganization == "")
        }
    }

    // MARK: §5.1.3 The attended host's name

    /// §5.1.3: control and format characters go (U+FEFF and bidi overrides among them),
    /// white space folds and is trimmed, and the name is cut at 64 grapheme clusters —
    /// not bytes, not code points: 64 × "e" + U+0301 (128 code points, 192 bytes) stays
    /// whole, 65 of them become 63 and "…". A name with nothing left is no name.
    @Test func theAttendedMachineNameIsCleanedAndCountedInGraphemeClusters() async throws {
        try await TestRelay.with { relay in
            let suffix = " (customer PC at 127.0.0.1)"
            let messy = try await Self.attendedName(relay, machineName: "  DESKTOP\u{202E}-7Q2\t\t office \u{FEFF}\u{7} ")
            #expect(messy == "DESKTOP-7Q2 office" + suffix)

            let e = "e\u{301}"
            let exact = try await Self.attendedName(relay, machineName: String(repeating: e, count: 64))
            #expect(exact == String(repeating: e, count: 64) + suffix)
            let long = try await Self.attendedName(relay, machineName: String(repeating: e, count: 65))
            #expect(long == String(repeating: e, count: 63) + "…" + suffix)

            let nothing = try await Self.attendedName(relay, machineName: " \u{7}\u{200B}\t ")
            #expect(nothing == "customer PC at 127.0.0.1")
            let method1 = try await Self.attendedName(relay, machineName: nil)
            #expect(method1 == "customer PC at 127.0.0.1")
        }
    }

    /// §5.1.3: the address is the one the relay sees, without the port; an IPv6 address
    /// as it is written, without brackets.
    @Test(.enabled(if: ProtocolConformanceTests.hasIPv6Loopback, "no IPv6 loopback"))
    func theAttendedAddressOverIPv6IsTheBareAddress() async throws {
        try await TestRelay.with({ $0.listen = ListenAddress(host: "::1", port: 0) }) { relay in
            let name = try await Self.attendedName(relay, machineName: nil, at: "::1")
            #expect(name == "customer PC at ::1")
        }
    }

    // MARK: §3 Text

    /// §3, §5.1.4: a BOM is an ordinary character, never stripped: a token with one in front
    /// is another token.
    @Test func aTokenWithAByteOrderMarkIsAnotherToken() async throws {
        try await TestRelay.with { relay in
            let agent = try await RawAgent.connect(to: relay)
            _ = try await agent.hello(.viewer)
            try await agent.send(.viewerAuth(ViewerAuth(token: "\u{FEFF}" + relay.acme.engineerToken, request: .newSupportCode)))
            try await agent.expectError(.authenticationFailed, "a token with a BOM in front")
        }
    }

    /// §5.1.3, §5.1.4, §10: the ids, secrets and tokens the document shows have the forms
    /// the relay issues (the vectors once used `h-7f3a9c2e` and `et_…`).
    @Test func theDocumentsCredentialsHaveTheIssuedForms() throws {
        let id = "[23456789abcdefghjkmnpqrstuvwxyz]{10}"
        let secret = "[A-Za-z0-9_-]{43}"
        let hostID = try Regex("ho-" + id)
        let hostSecret = try Regex(secret)
        let token = try Regex("en-" + id + "\\." + secret)
        // What a relay really issues.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("conformance-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try SQLStore(dataDirectory: folder)
        let (company, _) = try store.addCompany(name: "Forms")
        let (_, issuedToken) = try store.addEngineer(companyID: company.id, login: "forms")
        let (host, issuedSecret) = try store.enrollHost(companyID: company.id, name: "forms-pc")
        #expect(host.id.wholeMatch(of: hostID) != nil, "\(host.id)")
        #expect(issuedSecret.wholeMatch(of: hostSecret) != nil)
        #expect(issuedToken.wholeMatch(of: token) != nil)
        // What the document shows, wherever a vector names one.
        let document = try String(contentsOf: Self.protocolDocument, encoding: .utf8)
        let fields: [(String, Regex<AnyRegexOutput>)] = [("hostID: \"", hostID), ("secret: \"", hostSecret), ("token: \"", token)]
        for (field, form) in fields {
            var found = 0
            for part in document.components(separatedBy: field).dropFirst() {
                let value = String(part.prefix { $0 != "\"" })
                found += 1
                #expect(value.wholeMatch(of: form) != nil, "PROTOCOL.md \(field)\(value)\" is not in the form the relay issues")
            }
            #expect(found > 0, "PROTOCOL.md has no \(field)…\" example")
        }
    }

    // MARK: §8.6 Shutdown

    /// §8.6, §6.2: on shutdown every open connection, in every state, gets
    /// Bye(relay_shutdown) and is closed right after it; both agents of a session get
    /// relay_shutdown, not peer_left.
    @Test func shutdownSaysByeToEveryConnectionInEveryState() async throws {
        // `with` stops the relay again afterwards, which does nothing once it has stopped.
        // A long handshake deadline: the two connections that never authenticate must still
        // be open when the relay shuts down, however slow the machine.
        try await TestRelay.with({ $0.handshakeTimeout = .seconds(120) }) { relay in try await Self.shutDownWithEveryState(relay) }
    }

    private static func shutDownWithEveryState(_ relay: TestRelay) async throws {
        let beforeHello = try await RawAgent.connect(to: relay)
        let awaitingAuth = try await RawAgent.connect(to: relay)
        _ = try await awaitingAuth.hello(.viewer)
        let waitingViewer = try await RawAgent.connect(to: relay)
        _ = try await waitingViewer.hello(.viewer)
        try await waitingViewer.send(.viewerAuth(ViewerAuth(token: relay.globex.engineerToken, request: .newSupportCode)))
        guard case .codeIssued = try await waitingViewer.next("CodeIssued") else { throw TestFailure("expected CodeIssued") }
        let registered = try await RawAgent.connect(to: relay)
        _ = try await registered.hello(.host)
        try await registered.send(.hostAuth(.enrolled(hostID: relay.globex.hostID, secret: relay.globex.hostSecret)))
        guard case .hostRegistered = try await registered.next("HostRegistered") else { throw TestFailure("expected HostRegistered") }
        let (host, viewer, _, _) = try await Self.pairUnattended(relay)
        // Every connection is open at the relay before it shuts down.
        let open = await eventually { relay.node.relay.openConnections == 6 }
        #expect(open)

        async let stopped: Void = relay.shutDown()
        let agents = [
            ("before Hello", beforeHello), ("awaiting authentication", awaitingAuth), ("viewer with a code", waitingViewer),
            ("registered host", registered), ("paired host", host), ("paired viewer", viewer),
        ]
        for (state, agent) in agents {
            try await agent.expectBye(.relayShutdown, "the connection \(state) at shutdown")
        }
        await stopped
    }

    // MARK: Helpers

    static func header(_ type: UInt8, length: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(type) << 24 | UInt32(length))
        return buffer
    }

    static func frame(_ type: UInt8, _ payload: [UInt8]) -> ByteBuffer {
        var buffer = Self.header(type, length: payload.count)
        buffer.writeBytes(payload)
        return buffer
    }

    /// The end reasons of ACME's usage records.
    static func endReasons(_ relay: TestRelay) throws -> [UsageRecord.EndReason?] {
        try relay.store.usagePage(companyID: relay.acme.id, range: ExportRange(from: 0, to: .max), after: nil, limit: 10).map(\.endReason)
    }

    static let protocolDocument = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // RelayServerTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // package root
        .appendingPathComponent("docs/PROTOCOL.md")

    static var hasIPv6Loopback: Bool {
        ((try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8)) ?? "").contains("00000000000000000000000000000001")
    }

    /// ACME's enrolled host and engineer, paired as PROTOCOL.md §8.3 (unattended) says.
    static func pairUnattended(_ relay: TestRelay) async throws -> (host: RawAgent, viewer: RawAgent, toHost: Paired, toViewer: Paired) {
        let host = try await RawAgent.connect(to: relay)
        _ = try await host.hello(.host)
        try await host.send(.hostAuth(.enrolled(hostID: relay.acme.hostID, secret: relay.acme.hostSecret)))
        guard case .hostRegistered = try await host.next("HostRegistered") else { throw TestFailure("expected HostRegistered") }
        let viewer = try await RawAgent.connect(to: relay)
        _ = try await viewer.hello(.viewer)
        try await viewer.send(.viewerAuth(ViewerAuth(token: relay.acme.engineerToken, request: .connect(hostID: relay.acme.hostID))))
        guard case .paired(let toViewer) = try await viewer.next("Paired (viewer)") else { throw TestFailure("expected Paired (viewer)") }
        guard case .paired(let toHost) = try await host.next("Paired (host)") else { throw TestFailure("expected Paired (host)") }
        return (host, viewer, toHost, toViewer)
    }

    /// The peerName the viewer's Paired shows for an attended host that sent `machineName`
    /// (HostAuth method 3; method 1 when nil), both connected to `address`.
    static func attendedName(_ relay: TestRelay, machineName: String?, at address: String = "localhost") async throws -> String {
        try await Self.pairAttended(relay, machineName: machineName, at: address).toViewer.peerName
    }

    /// ACME's engineer asks for a code and a host presents it (§8.3, attended); both Paired.
    static func pairAttended(_ relay: TestRelay, machineName: String?, at address: String = "localhost") async throws -> (toHost: Paired, toViewer: Paired) {
        let viewer = try await RawAgent.connect(to: relay, host: address)
        _ = try await viewer.hello(.viewer)
        try await viewer.send(.viewerAuth(ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)))
        guard case .codeIssued(let issued) = try await viewer.next("CodeIssued") else { throw TestFailure("expected CodeIssued") }
        let host = try await RawAgent.connect(to: relay, host: address)
        _ = try await host.hello(.host)
        try await host.send(.hostAuth(machineName.map { .namedSupportCode(issued.code, machineName: $0) } ?? .supportCode(issued.code)))
        guard case .paired(let toHost) = try await host.next("Paired (host)") else { throw TestFailure("expected Paired (host)") }
        guard case .paired(let toViewer) = try await viewer.next("Paired (viewer)") else { throw TestFailure("expected Paired (viewer)") }
        await host.close()
        await viewer.close()
        return (toHost, toViewer)
    }
}

extension RawAgent {
    /// The next frame as a relay message; a relay that never answers is caught by the
    /// suite's time limit, not by a timer of the test's own.
    fileprivate func next(_ what: String) async throws -> RelayMessage {
        do {
            return try await self.readMessage()
        } catch {
            throw TestFailure("no \(what): \(error)")
        }
    }

    /// The next frame as a peer message (decoded by RelayWire, as an agent would).
    fileprivate func nextPeerMessage(_ what: String) async throws -> RelayMessage {
        let (type, payload): (UInt8, ByteBuffer)
        do {
            (type, payload) = try await self.readFrame()
        } catch {
            throw TestFailure("no \(what): \(error)")
        }
        guard let messageType = MessageType(rawValue: type) else { throw TestFailure("\(what): unknown type 0x\(String(type, radix: 16))") }
        return try RelayMessage(try Frame(type: messageType, payload: payload))
    }

    /// Sends Hello and returns the HelloAck.
    fileprivate func hello(_ role: Role, capabilities: Capabilities = .all) async throws -> HelloAck {
        try await self.send(.hello(Hello(role: role, capabilities: capabilities, software: "conformance-\(role)")))
        let answer = try await self.next("HelloAck")
        guard case .helloAck(let ack) = answer else { throw TestFailure("expected HelloAck, got \(answer.type.name)") }
        return ack
    }

    /// True when the relay closes the connection and nothing more arrived before.
    fileprivate func closesWithNothingMore() async throws -> Bool {
        try await self.drainUntilClosed() == 0
    }

    /// Expects Error(`code`) as the next frame, and the connection closed right after it.
    @discardableResult
    fileprivate func expectError(_ code: ErrorCode, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> ErrorMessage? {
        let message = try await self.next("Error(\(code)) for \(what)")
        guard case .error(let error) = message else {
            Issue.record("\(what): expected Error(\(code)), got \(message)", sourceLocation: sourceLocation)
            return nil
        }
        #expect(error.code == code, "\(what): got Error(\(error.code)) \(error.message)", sourceLocation: sourceLocation)
        #expect(try await self.closesWithNothingMore(), "\(what): the relay must close right after Error", sourceLocation: sourceLocation)
        return error
    }

    /// Expects Bye(`reason`) as the next frame, and the connection closed right after it.
    @discardableResult
    fileprivate func expectBye(_ reason: ByeReason, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Bye? {
        let message = try await self.next("Bye(\(reason)) for \(what)")
        guard case .bye(let bye) = message else {
            Issue.record("\(what): expected Bye(\(reason)), got \(message)", sourceLocation: sourceLocation)
            return nil
        }
        #expect(bye.reason == reason, "\(what): got Bye(\(bye.reason)) \(bye.text)", sourceLocation: sourceLocation)
        #expect(try await self.closesWithNothingMore(), "\(what): the relay must close right after Bye", sourceLocation: sourceLocation)
        return bye
    }

    /// Pings and expects the Pong with the same nonce as the next frame.
    fileprivate func expectPong(to nonce: UInt64, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await self.send(.ping(Ping(nonce: nonce)))
        let answer = try await self.next("Pong (\(what))")
        #expect(answer == .pong(Pong(nonce: nonce)), "\(what): got \(answer)", sourceLocation: sourceLocation)
    }
}
