import NIOCore
import RelayTestSupport
import RelayWire
import Testing

@testable import RelayServer

/// PROTOCOL.md §5.1.7: the names in Paired come from the relay's records, so the customer
/// at the host sees which engineer of which company connects (issue 10, item 13).
@Suite struct PairedIdentityTests {
    @Test func theHostLearnsTheEngineersLoginAndCompanyFromTheRelay() async throws {
        try await TestRelay.with { relay in
            let viewer = try await RawAgent.connect(to: relay)
            try await viewer.send(.hello(Hello(role: .viewer, capabilities: .all, software: "raw-viewer")))
            _ = try await viewer.readMessage()
            try await viewer.send(.viewerAuth(ViewerAuth(token: relay.acme.engineerToken, request: .newSupportCode)))
            guard case .codeIssued(let issued) = try await viewer.readMessage() else { throw TestFailure("expected CodeIssued") }
            let host = try await RawAgent.connect(to: relay)
            try await host.send(.hello(Hello(role: .host, capabilities: .all, software: "raw-host")))
            _ = try await host.readMessage()
            try await host.send(.hostAuth(.supportCode(issued.code)))
            guard case .paired(let toHost) = try await host.readMessage() else { throw TestFailure("expected Paired (host)") }
            guard case .paired(let toViewer) = try await viewer.readMessage() else { throw TestFailure("expected Paired (viewer)") }
            #expect(toHost.peerName == "kim.minji")
            #expect(toHost.peerOrganization == "ACME 코리아")
            #expect(toHost.mode == .attended)
            // A customer's PC belongs to no company the relay knows.
            #expect(toViewer.peerOrganization == "")
            await host.close()
            await viewer.close()
        }
    }

    @Test func anEnrolledHostAndItsEngineerShareTheCompanyName() async throws {
        try await TestRelay.with { relay in
            let host = try await RawAgent.connect(to: relay)
            try await host.send(.hello(Hello(role: .host, capabilities: .all, software: "raw-host")))
            _ = try await host.readMessage()
            try await host.send(.hostAuth(.enrolled(hostID: relay.globex.hostID, secret: relay.globex.hostSecret)))
            _ = try await host.readMessage()
            let viewer = try await RawAgent.connect(to: relay)
            try await viewer.send(.hello(Hello(role: .viewer, capabilities: .all, software: "raw-viewer")))
            _ = try await viewer.readMessage()
            try await viewer.send(.viewerAuth(ViewerAuth(token: relay.globex.engineerToken, request: .connect(hostID: relay.globex.hostID))))
            guard case .paired(let toViewer) = try await viewer.readMessage() else { throw TestFailure("expected Paired (viewer)") }
            guard case .paired(let toHost) = try await host.readMessage() else { throw TestFailure("expected Paired (host)") }
            #expect(toHost.peerName == "hank" && toHost.peerOrganization == "Globex")
            #expect(toViewer.peerName == "front-desk" && toViewer.peerOrganization == "Globex")
            await host.close()
            await viewer.close()
        }
    }
}
