import NIOCore
import RelayTestSupport
import Testing

@testable import RelayServer

// ConnectionAdmission: per-source and relay-wide caps on connections (issue 10 item 9).
@Suite struct ConnectionAdmissionTests {
    private static let flooder = SourceKey(ipAddress: "192.0.2.7")!
    private static let honest = SourceKey(ipAddress: "198.51.100.1")!

    /// A generator that must not be asked: below *start* the decision is not random.
    private struct NoRandomness: RandomNumberGenerator {
        mutating func next() -> UInt64 {
            Issue.record("the random early drop was consulted below its start")
            return 0
        }
    }

    @Test func oneSourceCannotTakeEverySlotBeforeLogin() {
        var admission = ConnectionAdmission()
        var generator = NoRandomness()
        for index in 0..<10 {
            #expect(admission.admit(Self.flooder, using: &generator) == .admitted, "connection \(index + 1)")
        }
        #expect(admission.admit(Self.flooder, using: &generator) == .refused(.sourceUnauthenticatedLimit(10)))
        // Everyone else still gets in.
        #expect(admission.admit(Self.honest, using: &generator) == .admitted)
        #expect(admission.connections(of: Self.flooder) == (10, 10))
        #expect(admission.open == 11 && admission.unauthenticated == 11)
        // One of the flooder's connections logs in (or closes): one slot frees.
        admission.authenticated(Self.flooder)
        #expect(admission.admit(Self.flooder, using: &generator) == .admitted)
        #expect(admission.admit(Self.flooder, using: &generator) == .refused(.sourceUnauthenticatedLimit(10)))
        admission.closed(Self.flooder, wasAuthenticated: false)
        #expect(admission.admit(Self.flooder, using: &generator) == .admitted)
    }

    @Test func anIPv6Slash64IsOneSource() {
        var admission = ConnectionAdmission(policy: .init(maximumUnauthenticatedPerSource: 3))
        var generator = NoRandomness()
        for index in 1...3 {
            #expect(admission.admit(SourceKey(ipAddress: "2001:db8:5:6::\(index)")!, using: &generator) == .admitted)
        }
        #expect(admission.admit(SourceKey(ipAddress: "2001:db8:5:6:dead:beef::1")!, using: &generator) == .refused(.sourceUnauthenticatedLimit(3)))
        #expect(admission.admit(SourceKey(ipAddress: "2001:db8:5:7::1")!, using: &generator) == .admitted)
        #expect(admission.trackedSources == 2)
    }

    @Test func authenticatedConnectionsCountTowardsThePerSourceTotal() {
        var admission = ConnectionAdmission(policy: .init(maximumPerSource: 25, maximumUnauthenticatedPerSource: 10))
        var generator = NoRandomness()
        // An office behind one address: its hosts log in one after the other.
        for _ in 0..<25 {
            #expect(admission.admit(Self.honest, using: &generator) == .admitted)
            admission.authenticated(Self.honest)
        }
        #expect(admission.connections(of: Self.honest) == (25, 0))
        #expect(admission.admit(Self.honest, using: &generator) == .refused(.sourceLimit(25)))
        admission.closed(Self.honest, wasAuthenticated: true)
        #expect(admission.admit(Self.honest, using: &generator) == .admitted)
        #expect(admission.connections(of: Self.honest) == (25, 1))
    }

    @Test func refusalsSayWhatToDo() {
        #expect(ConnectionAdmission.Refusal.sourceUnauthenticatedLimit(10).description.contains("10 connections logging in"))
        #expect(ConnectionAdmission.Refusal.sourceLimit(1000).description.contains("maximum_connections_per_source"))
        #expect(ConnectionAdmission.Refusal.unauthenticatedLimit.description.contains("retry"))
    }

    @Test func earlyDropRisesLinearlyFromStartToFull() {
        var admission = ConnectionAdmission(
            policy: .init(
                maximumUnauthenticatedPerSource: 1, unauthenticatedStart: 100, unauthenticatedDropPercent: 30, maximumUnauthenticated: 200
            ))
        var generator = SeededRandom(seed: 9)
        var next = 0
        func fill(to count: Int) {
            while admission.unauthenticated < count {
                next += 1
                let source = SourceKey(ipAddress: "10.\(next >> 16 & 255).\(next >> 8 & 255).\(next & 255)")!
                _ = admission.admit(source, using: &generator)
            }
        }
        fill(to: 99)
        #expect(admission.earlyDropPercent == 0)
        fill(to: 100)
        #expect(admission.earlyDropPercent == 30)
        fill(to: 150)
        #expect(admission.earlyDropPercent == 65)
        fill(to: 200)
        #expect(admission.earlyDropPercent == 100)
        var refusals = 0
        for index in 0..<100 {
            if admission.admit(SourceKey(ipAddress: "172.16.0.\(index)")!, using: &generator) != .admitted { refusals += 1 }
        }
        #expect(refusals == 100)
        #expect(admission.unauthenticated == 200)
    }

    /// Property: at *start*, about *rate* percent are refused (statistically).
    @Test func atStartAboutRatePercentAreRefused() {
        let policy = ConnectionAdmission.Policy(
            maximumPerSource: 1_000_000, maximumUnauthenticatedPerSource: 1_000_000,
            unauthenticatedStart: 10, unauthenticatedDropPercent: 30, maximumUnauthenticated: 20
        )
        var admission = ConnectionAdmission(policy: policy)
        var generator = SeededRandom(seed: 30)
        for _ in 0..<10 { _ = admission.admit(Self.honest, using: &generator) }
        var refused = 0
        for _ in 0..<10_000 {
            // Admit one and close it again, so the count stays at start.
            if admission.admit(Self.flooder, using: &generator) == .admitted {
                admission.closed(Self.flooder, wasAuthenticated: false)
            } else {
                refused += 1
            }
        }
        #expect((2700...3300).contains(refused), "\(refused) of 10,000 refused at 30 %")
    }

    @Test func memoryReturnsToEmptyWhenConnectionsClose() {
        var admission = ConnectionAdmission()
        var generator = SeededRandom(seed: 1)
        for index in 0..<500 {
            let source = SourceKey(ipAddress: "2001:db8:\(index % 50)::\(index)")!
            #expect(admission.admit(source, using: &generator) == .admitted)
        }
        #expect(admission.trackedSources == 50)
        for index in 0..<500 {
            let source = SourceKey(ipAddress: "2001:db8:\(index % 50)::\(index)")!
            if index % 3 == 0 { admission.authenticated(source) }
            admission.closed(source, wasAuthenticated: index % 3 == 0)
        }
        #expect(admission.trackedSources == 0)
        #expect(admission.open == 0 && admission.unauthenticated == 0)
    }

    /// A caller's slip — a close it did not admit, a second `authenticated`, the wrong
    /// flag — never makes a count negative or leaves an entry behind.
    @Test func slipsCannotCorruptTheCounts() {
        var admission = ConnectionAdmission()
        var generator = SeededRandom(seed: 2)
        admission.closed(Self.honest, wasAuthenticated: false)
        admission.authenticated(Self.honest)
        #expect(admission.trackedSources == 0 && admission.open == 0 && admission.unauthenticated == 0)
        _ = admission.admit(Self.honest, using: &generator)
        admission.authenticated(Self.honest)
        admission.authenticated(Self.honest)
        #expect(admission.unauthenticated == 0)
        _ = admission.admit(Self.honest, using: &generator)
        // Says "authenticated" for the one that was not.
        admission.closed(Self.honest, wasAuthenticated: true)
        admission.closed(Self.honest, wasAuthenticated: true)
        admission.closed(Self.honest, wasAuthenticated: true)
        #expect(admission.trackedSources == 0 && admission.open == 0 && admission.unauthenticated == 0)
    }

    /// Property: for random sequences of connects, logins and closes from a few sources,
    /// the per-source and relay-wide counts match a simple model, the caps hold at every
    /// step, and everything returns to empty once all close.
    @Test(arguments: [UInt64(7), 8, 9, 10])
    func randomTrafficKeepsTheInvariants(seed: UInt64) {
        let policy = ConnectionAdmission.Policy(
            maximumPerSource: 12, maximumUnauthenticatedPerSource: 4, unauthenticatedStart: 10, unauthenticatedDropPercent: 50, maximumUnauthenticated: 16
        )
        var admission = ConnectionAdmission(policy: policy)
        var generator = SeededRandom(seed: seed)
        let sources = (0..<6).map { SourceKey(ipAddress: "192.0.2.\($0)")! }
        // The model: open connections as (source, authenticated).
        var connections: [(source: SourceKey, authenticated: Bool)] = []
        for _ in 0..<5000 {
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<5:
                let source = sources.randomElement(using: &generator)!
                let before = connections.filter { $0.source == source }
                if admission.admit(source, using: &generator) == .admitted {
                    #expect(before.count < policy.maximumPerSource)
                    #expect(before.count { !$0.authenticated } < policy.maximumUnauthenticatedPerSource)
                    connections.append((source, false))
                }
            case 5..<7:
                if let index = connections.indices.filter({ !connections[$0].authenticated }).randomElement(using: &generator) {
                    connections[index].authenticated = true
                    admission.authenticated(connections[index].source)
                }
            default:
                if let index = connections.indices.randomElement(using: &generator) {
                    let closing = connections.remove(at: index)
                    admission.closed(closing.source, wasAuthenticated: closing.authenticated)
                }
            }
            #expect(admission.open == connections.count)
            #expect(admission.unauthenticated == connections.count { !$0.authenticated })
            #expect(admission.unauthenticated <= policy.maximumUnauthenticated)
            for source in sources {
                let counts = admission.connections(of: source)
                #expect(counts.open == connections.count { $0.source == source })
                #expect(counts.unauthenticated == connections.count { $0.source == source && !$0.authenticated })
            }
        }
        for closing in connections { admission.closed(closing.source, wasAuthenticated: closing.authenticated) }
        #expect(admission.trackedSources == 0 && admission.open == 0 && admission.unauthenticated == 0)
    }
}
