import RelayScreen
import RelayWire
import Testing

/// Viewer pacing (PROTOCOL.md §7.1), driven by a manual clock.
@Suite struct ScreenSessionPacingTests {
    typealias Pacer = UpdatePacer<ManualInstant>
    let start = ManualInstant(offset: .zero)

    @Test func nothingIsCapturedUntilTheViewerAsks() {
        var pacer = Pacer(framesPerSecond: 10)
        #expect(pacer.step(at: self.start) == .idle)
        #expect(pacer.next == nil)
        pacer.received(UpdateRequest(requestID: 1, flags: .fullRefresh))
        #expect(pacer.step(at: self.start) == .capture)
        #expect(pacer.next == .init(requestID: 1, fullRefresh: true))
    }

    @Test func capturesAreAtMostOnePerFrameInterval() {
        var pacer = Pacer(framesPerSecond: 10)
        pacer.received(UpdateRequest(requestID: 1))
        pacer.received(UpdateRequest(requestID: 2))
        pacer.answered(at: self.start)
        #expect(pacer.next?.requestID == 2)
        // The second request waits for the interval (100 ms) since the last capture.
        #expect(pacer.step(at: self.start + .milliseconds(40)) == .wait(until: self.start + .milliseconds(100)))
        #expect(pacer.step(at: self.start + .milliseconds(100)) == .capture)
        pacer.answered(at: self.start + .milliseconds(100))
        #expect(pacer.step(at: self.start + .seconds(5)) == .idle)
    }

    @Test func anUnchangedScreenKeepsTheRequestWaitingSoChangesCoalesce() {
        var pacer = Pacer(framesPerSecond: 20)
        pacer.received(UpdateRequest(requestID: 7))
        pacer.capturedNothing(at: self.start)
        #expect(pacer.next?.requestID == 7)
        #expect(pacer.step(at: self.start + .milliseconds(10)) == .wait(until: self.start + .milliseconds(50)))
        pacer.capturedNothing(at: self.start + .milliseconds(50))
        pacer.answered(at: self.start + .milliseconds(100))
        #expect(pacer.waiting.isEmpty)
    }

    @Test func aFloodingViewerIsBoundedAndKeepsItsFullRefresh() {
        var pacer = Pacer(framesPerSecond: 30)
        pacer.received(UpdateRequest(requestID: 0, flags: .fullRefresh))
        for id in 1..<100 { pacer.received(UpdateRequest(requestID: UInt32(id))) }
        #expect(pacer.waiting.count == Pacer.maximumWaiting)
        #expect(pacer.next?.fullRefresh == true)
        #expect(pacer.waiting.last?.requestID == 99)
    }

    @Test func statisticsCoverTheWindow() {
        var statistics = ScreenStatistics(window: .seconds(2))
        for tenth in 0..<30 {  // 3 s of 10 updates/s, 1,000 bytes each
            statistics.record(bytes: 1_000, latency: .milliseconds(tenth % 2 == 0 ? 20 : 40), at: .milliseconds(100 * tenth))
        }
        let figures = statistics.figures(at: .milliseconds(2_950))
        #expect(figures.updatesPerSecond == 10)
        #expect(figures.kilobitsPerSecond == 80)
        #expect(figures.bytesPerUpdate == 1_000)
        #expect(figures.latencyMaximumMilliseconds == 40)
        #expect(statistics.totalUpdates == 30)
        #expect(statistics.figures(at: .seconds(60)).updatesPerSecond == 0)
    }
}

/// A point in time that tests move by hand.
struct ManualInstant: InstantProtocol, Sendable {
    var offset: Duration
    func advanced(by duration: Duration) -> ManualInstant { ManualInstant(offset: self.offset + duration) }
    func duration(to other: ManualInstant) -> Duration { other.offset - self.offset }
    static func < (lhs: ManualInstant, rhs: ManualInstant) -> Bool { lhs.offset < rhs.offset }
    static func + (lhs: ManualInstant, rhs: Duration) -> ManualInstant { lhs.advanced(by: rhs) }
}
