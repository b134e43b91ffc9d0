import Crypto
import Foundation
import NIOCore
import Testing

@testable import RelayServer
@testable import RelayStore
@testable import RelayWire

private final class Peer: Sendable, Equatable {
    static func == (lhs: Peer, rhs: Peer) -> Bool { lhs === rhs }
}
private typealias Machine = RelayServer.ConnectionStateMachine<Peer, String>

// Key logins in the connection state machine (PROTOCOL.md §1.2, §5.1.3-4): the transport
// proves a key before Hello; HostAuth method 4 and a ViewerAuth without token ask the store
// whose key it is. No relay, no channel.
@Suite struct KeyLoginStateMachineTests {
    private static let key = Curve25519.Signing.PrivateKey().publicKey.rawRepresentation
    private static let engineer = Engineer(
        id: "en-2", companyID: "co-1", login: "seo.yeon", tokenDigest: Data(), publicKey: Self.key, createdAt: Date(timeIntervalSince1970: 0),
        companyName: "Hanbit Support")
    private static let host = EnrolledHost(
        id: "ho-9", companyID: "co-1", name: "회계팀 PC-03", secretDigest: Data(), publicKey: Self.key, createdAt: Date(timeIntervalSince1970: 0))

    private static func machine(_ role: Role, key: Data?) -> Machine {
        var machine = Machine(address: "192.0.2.8")
        if let key { machine.clientKeyProved(key) }
        _ = machine.received(.hello(Hello(role: role, capabilities: .all, software: "relay-agent/test")))
        return machine
    }

    @Test func anEnrolledHostLogsInWithTheKeyTheTransportProved() {
        var machine = Self.machine(.host, key: Self.key)
        #expect(machine.received(.hostAuth(.key(hostID: "ho-9"))) == .ask(.throttle))
        #expect(machine.throttleChecked(retryAfter: nil, source: .unknown) == .ask(.verifyHostKey(id: "ho-9", key: Self.key)))
        guard case .authenticated(let party, let access, .registerHost(hostID: "ho-9", companyID: "co-1", _)) = machine.hostVerified(Self.host) else {
            Issue.record("the host was not let in")
            return
        }
        // Its live sessions end when its key changes: the credential digest is the key.
        #expect(party.credential == .init(kind: .host, id: "ho-9", digest: Self.key))
        #expect(access == .init(kind: .hostKey, outcome: .accepted, companyID: "co-1", subject: "ho-9"))
    }

    @Test func anEngineerLogsInWithTheirKeyAndNoToken() {
        var machine = Self.machine(.viewer, key: Self.key)
        #expect(machine.received(.viewerAuth(.key(.connect(hostID: "ho-9")))) == .ask(.throttle))
        #expect(machine.throttleChecked(retryAfter: nil, source: .unknown) == .ask(.verifyEngineerKey(Self.key)))
        guard
            case .authenticated(let party, let access, .ask(.claimHost(hostID: "ho-9", companyID: "co-1", anywhere: true))) = machine.engineerVerified(
                Self.engineer)
        else {
            Issue.record("the engineer was not let in")
            return
        }
        #expect(party.name == "seo.yeon" && party.organization == "Hanbit Support")
        #expect(party.credential == .init(kind: .engineer, id: "en-2", digest: Self.key))
        #expect(access == .init(kind: .engineerKey, outcome: .accepted, companyID: "co-1", subject: "seo.yeon"))
    }

    /// A key login on a connection that proved no key is refused before the store is asked,
    /// and is not charged as a guess.
    @Test func aKeyLoginWithoutAProvedKeyIsRefusedUnasked() {
        for auth in [RelayMessage.hostAuth(.key(hostID: "ho-9")), .viewerAuth(.key(.newSupportCode))] {
            var machine = Self.machine(auth.type == .hostAuth ? .host : .viewer, key: nil)
            _ = machine.received(auth)
            guard case .refuse(let refusal) = machine.throttleChecked(retryAfter: nil, source: .unknown) else {
                Issue.record("\(auth.type.name) without a key was not refused")
                continue
            }
            #expect(refusal.code == .authenticationFailed && !refusal.chargesSource)
            #expect(refusal.text.contains("TLS client certificate"))
            #expect(refusal.access.detail == "no client certificate")
        }
    }

    /// A key nobody has: refused, charged to the source, and the text names the key's
    /// fingerprint so that the engineer can give the admin the right one.
    @Test func anUnknownKeyIsRefusedWithItsFingerprint() {
        var viewer = Self.machine(.viewer, key: Self.key)
        _ = viewer.received(.viewerAuth(.key(.newSupportCode)))
        _ = viewer.throttleChecked(retryAfter: nil, source: .unknown)
        guard case .refuse(let refusal) = viewer.engineerVerified(nil) else {
            Issue.record("an unknown key was let in")
            return
        }
        #expect(refusal.chargesSource && refusal.access.kind == .engineerKey && refusal.access.outcome == .rejected)
        #expect(refusal.text.contains(KeyFingerprint.of(rawPublicKey: Self.key)) && refusal.text.contains("engineer add"))

        var host = Self.machine(.host, key: Self.key)
        _ = host.received(.hostAuth(.key(hostID: "ho-9")))
        _ = host.throttleChecked(retryAfter: nil, source: .unknown)
        guard case .refuse(let hostRefusal) = host.hostVerified(nil) else {
            Issue.record("a wrong host key was let in")
            return
        }
        #expect(hostRefusal.chargesSource && hostRefusal.account == "host:ho-9" && hostRefusal.access.kind == .hostKey)
        #expect(hostRefusal.text.contains("host set-key ho-9"))
    }

    /// A token still works for accounts made before keys, and the access log says it is replayable.
    @Test func aTokenLoginIsMarkedLegacyInTheAccessLog() {
        var machine = Self.machine(.viewer, key: Self.key)
        _ = machine.received(.viewerAuth(ViewerAuth(token: "en-1.secret", request: .newSupportCode)))
        // A token login ignores any key the connection proved.
        #expect(machine.throttleChecked(retryAfter: nil, source: .unknown) == .ask(.verifyEngineer(token: "en-1.secret")))
        let legacy = Engineer(id: "en-1", companyID: "co-1", login: "minjun", tokenDigest: Data([1, 2]), createdAt: Date(timeIntervalSince1970: 0))
        guard case .authenticated(_, let access, _) = machine.engineerVerified(legacy) else {
            Issue.record("the token engineer was not let in")
            return
        }
        #expect(access?.kind == .viewerToken && access?.detail?.contains("replayable") == true)
    }
}
