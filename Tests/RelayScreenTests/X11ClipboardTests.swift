import CX11
import Foundation
import RelayTestSupport
import RelayTileCodec
import RelayWire
import Synchronization
import Testing

@testable import RelayScreen

/// Whether an X server is reachable: scripts/test.sh starts Xvfb and sets DISPLAY.
private let xDisplayIsSet: Bool = {
    guard let display = ProcessInfo.processInfo.environment["DISPLAY"], !display.isEmpty else { return false }
    return true
}()

/// ``X11Clipboard`` against the X server's selections, checked through a plain X client
/// written here with Xlib (ICCCM ConvertSelection and SetSelectionOwner, as any program
/// on the desktop), never through the clipboard's own code, except where a second
/// ``X11Clipboard`` serves a text whose INCR sending the first test already checked.
/// Each test opens its plain client first and keeps it: an X server started without
/// -noreset refuses connections while it resets after its last client left.
// The display has one CLIPBOARD and one PRIMARY: the tests run one at a time.
@Suite(.serialized, .enabled(if: xDisplayIsSet, "no X display: set DISPLAY or run scripts/test.sh, which starts Xvfb"))
struct X11ClipboardTests {
    static let korean = "엔지니어의 클립보드: café 123"

    @Test("the engineer's text: CLIPBOARD and PRIMARY owned, served as UTF8_STRING, STRING (Latin-1), TEXT, TARGETS and TIMESTAMP; others refused")
    func theEngineersTextIsServedInEveryTextForm() async throws {
        let client = try PlainXClient()
        defer { client.close() }
        let clipboard = try X11Clipboard.start(display: nil)
        defer { clipboard.stop() }
        // Owned when set returns: a paste key injected next finds the text.
        await clipboard.set(text: Self.korean)
        let utf8 = try #require(try client.read("CLIPBOARD", as: "UTF8_STRING"))
        #expect(utf8.type == "UTF8_STRING" && utf8.text == Self.korean)

        let primary = try #require(try client.read("PRIMARY", as: "UTF8_STRING"))
        #expect(primary.type == "UTF8_STRING" && primary.text == Self.korean)
        let latin1 = try #require(try client.read("CLIPBOARD", as: "STRING"))
        #expect(latin1.type == "STRING")
        #expect(latin1.bytes == Array("????? ????: caf".utf8) + [0xE9] + Array(" 123".utf8))
        let text = try #require(try client.read("CLIPBOARD", as: "TEXT"))
        #expect(text.type == "UTF8_STRING" && text.text == Self.korean)
        let plain = try #require(try client.read("CLIPBOARD", as: "text/plain;charset=utf-8"))
        #expect(plain.type == "text/plain;charset=utf-8" && plain.text == Self.korean)
        let targets = try #require(try client.read("CLIPBOARD", as: "TARGETS"))
        #expect(targets.type == "ATOM")
        #expect(Set(targets.items.map(client.name(of:))) == ["TARGETS", "TIMESTAMP", "UTF8_STRING", "text/plain;charset=utf-8", "STRING", "TEXT"])
        let timestamp = try #require(try client.read("CLIPBOARD", as: "TIMESTAMP"))
        #expect(timestamp.type == "INTEGER" && timestamp.items.count == 1 && timestamp.items[0] != 0)
        #expect(try client.read("CLIPBOARD", as: "image/png") == nil)
        #expect(try client.read("CLIPBOARD", as: "MULTIPLE") == nil)

        // Latin-1 holds this one whole: TEXT comes as STRING.
        await clipboard.set(text: "café")
        let latin = try #require(try client.read("CLIPBOARD", as: "TEXT"))
        #expect(latin.type == "STRING" && latin.bytes == [0x63, 0x61, 0x66, 0xE9])
        // An empty clipboard is an empty text, still owned.
        await clipboard.set(text: "")
        let empty = try #require(try client.read("CLIPBOARD", as: "UTF8_STRING"))
        #expect(empty.type == "UTF8_STRING" && empty.bytes.isEmpty)
    }

    @Test("a text over 256 KiB reaches a plain client in INCR pieces")
    func aLargeTextGoesIncrementally() async throws {
        let client = try PlainXClient()
        defer { client.close() }
        let clipboard = try X11Clipboard.start(display: nil)
        defer { clipboard.stop() }
        let large = String(repeating: "긴 클립보드 텍스트 line \n", count: 20_000)
        #expect(large.utf8.count > 600_000)
        await clipboard.set(text: large)
        try await client.waitUntil("CLIPBOARD", holds: large)
        let content = try #require(try client.read("CLIPBOARD", as: "UTF8_STRING"))
        #expect(content.incrementalPieces >= 3, "read in \(content.incrementalPieces) INCR pieces")
        #expect(content.type == "UTF8_STRING")
        #expect(content.text == large)
    }

    @Test("another client taking CLIPBOARD serves it from then on, and its text comes out of events; PRIMARY stays the engineer's")
    func anotherOwnerTakesOver() async throws {
        let client = try PlainXClient()
        defer { client.close() }
        let clipboard = try X11Clipboard.start(display: nil)
        defer { clipboard.stop() }
        let events = EventLog(clipboard)
        await clipboard.set(text: "from the engineer")
        try await client.waitUntil("CLIPBOARD", holds: "from the engineer")
        let owner = try PlainSelectionOwner(selection: "CLIPBOARD", text: "호스트에서 복사")
        defer { owner.stop() }
        #expect(try await events.wait(count: 1) == [.copied("호스트에서 복사")])
        #expect(owner.requests.contains("UTF8_STRING"))
        #expect(try client.read("CLIPBOARD", as: "UTF8_STRING")?.text == "호스트에서 복사")
        #expect(try client.read("PRIMARY", as: "UTF8_STRING")?.text == "from the engineer")
    }

    @Test("copies on the desktop come out once each: not the host's own text, not the same text again")
    func copiesComeOutOnceEach() async throws {
        let client = try PlainXClient()
        defer { client.close() }
        let clipboard = try X11Clipboard.start(display: nil)
        defer { clipboard.stop() }
        let events = EventLog(clipboard)

        let first = try PlainSelectionOwner(selection: "CLIPBOARD", text: "첫 번째 copy")
        #expect(try await events.wait(count: 1) == [.copied("첫 번째 copy")])
        first.stop()
        // The same text copied again (by another program) is not sent again.
        let again = try PlainSelectionOwner(selection: "CLIPBOARD", text: "첫 번째 copy")
        try await Self.waitUntil { again.requests.contains("UTF8_STRING") }
        again.stop()
        // Nor is the engineer's text, owned by the host, nor a program copying it back.
        await clipboard.set(text: "엔지니어 text")
        try await client.waitUntil("CLIPBOARD", holds: "엔지니어 text")
        let echo = try PlainSelectionOwner(selection: "CLIPBOARD", text: "엔지니어 text")
        try await Self.waitUntil { echo.requests.contains("UTF8_STRING") }
        echo.stop()
        let last = try PlainSelectionOwner(selection: "CLIPBOARD", text: "마지막 copy")
        defer { last.stop() }
        #expect(try await events.wait(count: 2) == [.copied("첫 번째 copy"), .copied("마지막 copy")])
    }

    @Test("an owner with Latin-1 STRING only is read as STRING; one without text is reported, not sent")
    func latin1AndNotText() async throws {
        let client = try PlainXClient()
        defer { client.close() }
        let clipboard = try X11Clipboard.start(display: nil)
        defer { clipboard.stop() }
        let events = EventLog(clipboard)
        let old = try PlainSelectionOwner(selection: "CLIPBOARD", text: "naïve café", targets: ["STRING"])
        #expect(try await events.wait(count: 1) == [.copied("naïve café")])
        #expect(old.requests == ["UTF8_STRING", "STRING"])
        old.stop()
        let image = try PlainSelectionOwner(selection: "CLIPBOARD", text: "", targets: ["image/png"])
        defer { image.stop() }
        let reported = try await events.wait(count: 2)
        guard case .problem(let text) = reported[1] else { throw TestFailure("expected a problem, got \(reported[1])") }
        #expect(text.contains("not text"))
    }

    @Test("a large copy arrives through INCR; one over the limit is reported with its size, not sent")
    func largeCopies() async throws {
        let large = String(repeating: "긴 복사 텍스트 0123456789\n", count: 20_000)
        let client = try PlainXClient()
        defer { client.close() }
        let reader = try X11Clipboard.start(display: nil)
        defer { reader.stop() }
        let events = EventLog(reader)
        let owner = try X11Clipboard.start(display: nil)
        await owner.set(text: large)
        #expect(try await events.wait(count: 1) == [.copied(large)])
        owner.stop()

        let limited = try X11Clipboard.start(display: nil, maximumTextLength: 100_000)
        defer { limited.stop() }
        let limitedEvents = EventLog(limited)
        let second = try X11Clipboard.start(display: nil)
        defer { second.stop() }
        await second.set(text: large + "!")
        let reported = try await limitedEvents.wait(count: 1)
        guard case .problem(let text) = reported[0] else { throw TestFailure("expected a problem, got \(reported[0])") }
        #expect(text.contains("(\(large.utf8.count + 1) bytes)"), "\(text)")
        #expect(text.contains("100000 bytes"))
    }

    /// The clipboard's thread must not sleep with events in Xlib's queue: a call that reads
    /// the connection (XFlush does) between the last look at the queue and `poll` leaves
    /// them there, and the copy then waits for the 5 s timeout. Each copy here is a few
    /// round trips, so 300 in a row hit that window nearly every run when it is open.
    @Test("300 copies in a row each arrive at once, none waiting for a timeout")
    func copiesInARowArriveAtOnce() async throws {
        let client = try PlainXClient()
        defer { client.close() }
        let reader = try X11Clipboard.start(display: nil)
        defer { reader.stop() }
        let events = EventLog(reader)
        let owner = try X11Clipboard.start(display: nil)
        defer { owner.stop() }
        for index in 1...300 {
            await owner.set(text: "copy number \(index)")
            let arrived = try await events.wait(count: index, within: .seconds(3), settle: .zero)
            try #require(arrived.last == .copied("copy number \(index)"), "copy \(index) of 300")
        }
    }

    @Test("stop gives both selections up and ends the events")
    func stopGivesTheSelectionsUp() async throws {
        let client = try PlainXClient()
        defer { client.close() }
        let clipboard = try X11Clipboard.start(display: nil)
        await clipboard.set(text: "until the session ends")
        try await client.waitUntil("CLIPBOARD", holds: "until the session ends")
        #expect(client.owner(of: "PRIMARY") != 0)
        clipboard.stop()
        #expect(client.owner(of: "CLIPBOARD") == 0)
        #expect(client.owner(of: "PRIMARY") == 0)
        var iterator = clipboard.events.makeAsyncIterator()
        #expect(await iterator.next() == nil)
        await clipboard.set(text: "ignored after stop")
        clipboard.stop()
    }

    @Test("a display that cannot be opened is an error that says what to do")
    func unavailableDisplay() {
        let error = #expect(throws: ScreenSourceError.self) { try X11Clipboard.start(display: ":4093") }
        #expect(error?.kind == .displayUnavailable)
        #expect(error?.message.contains("cannot open X display :4093") == true)
    }

    static func waitUntil(within limit: Duration = .seconds(5), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TestFailure("the condition did not hold within \(limit)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// The pure parts: the forms of an offered text, the INCR pieces, the clock's wrap.
@Suite struct SelectionOfferTests {
    static let atoms = SelectionAtoms(
        clipboard: 1, primary: 2, targets: 3, timestamp: 4, utf8String: 5, textPlainUTF8: 6, string: 7, text: 8, atom: 9, integer: 10,
        incremental: 11, transfer: 12, clock: 13)

    @Test func answersByTarget() {
        let offer = SelectionOffer(text: "한 é", time: 77)
        let atoms = Self.atoms
        #expect(offer.answer(target: atoms.utf8String, atoms: atoms) == .bytes(type: atoms.utf8String, Array("한 é".utf8)))
        #expect(offer.answer(target: atoms.string, atoms: atoms) == .bytes(type: atoms.string, [0x3F, 0x20, 0xE9]))
        #expect(offer.answer(target: atoms.text, atoms: atoms) == .bytes(type: atoms.utf8String, Array("한 é".utf8)))
        #expect(offer.answer(target: atoms.timestamp, atoms: atoms) == .items(type: atoms.integer, [77]))
        #expect(offer.answer(target: 99, atoms: atoms) == .refused)
        #expect(SelectionOffer.text(of: [0x63, 0xE9], type: atoms.string, atoms: atoms) == "cé")
        #expect(SelectionOffer.text(of: Array("한".utf8), type: atoms.utf8String, atoms: atoms) == "한")
        #expect(SelectionOffer.text(of: [0x61, 0xFF], type: atoms.utf8String, atoms: atoms) == "a\u{FFFD}")
    }

    @Test func incrementalPiecesEndWithAnEmptyOne() {
        var transfer = IncrementalTransfer(requestor: 1, property: 2, type: 3, bytes: Array(0..<10), deadline: .now)
        #expect(transfer.next(size: 4).map(Array.init) == [0, 1, 2, 3])
        #expect(transfer.next(size: 4).map(Array.init) == [4, 5, 6, 7])
        #expect(transfer.next(size: 4).map(Array.init) == [8, 9])
        #expect(!transfer.isFinished)
        #expect(transfer.next(size: 4).map(Array.init) == [])
        #expect(transfer.isFinished)
        #expect(transfer.next(size: 4) == nil)
    }

    @Test func requestTimesAcrossTheClocksWrap() {
        let owned: Time = 1000
        #expect(!ClipboardTime.isEarlier(0, than: owned), "CurrentTime is never earlier")
        #expect(ClipboardTime.isEarlier(999, than: owned))
        #expect(!ClipboardTime.isEarlier(1000, than: owned))
        #expect(!ClipboardTime.isEarlier(5, than: 0xFFFF_FFF0), "after the 32-bit clock wrapped")
        #expect(ClipboardTime.isEarlier(0xFFFF_FFF0, than: 5))
    }
}

/// The host session's side: the desktop's clipboard opened for full control only, both
/// ways, a copy over the limit reported and not sent, and stopped when the session ends.
@Suite struct HostSessionClipboardTests {
    static let screen = Framebuffer(width: 16, height: 16, fill: 0x10_20_30)

    @Test("full control: the viewer's Clipboard goes to the desktop, the desktop's copies to the viewer; stopped at the end")
    func fullControlSharesBothWays() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair(maximumPayloadLength: 64)
        let desktop = FakeDesktopClipboard()
        let opened = Locked<[Int]>([])
        let session = HostScreenSession(
            source: EchoSource(Self.screen),
            options: .init(
                clipboard: "--clipboard",
                desktopClipboard: { limit in
                    opened.update { $0.append(limit) }
                    return desktop
                }))
        let (events, sink) = AsyncStream.makeStream(of: HostScreenSession.Event.self)
        let outcome = try await withThrowingTaskGroup(of: HostScreenSession.Outcome?.self) { group in
            group.addTask {
                defer { sink.finish() }
                return try await session.run(on: hostEnd, clock: TestClock()) { sink.yield($0) }
            }
            guard case .accessGranted(let granted) = try await viewerEnd.receiveMessage() else { throw TestFailure("expected AccessGranted") }
            #expect(granted.inputAllowed)
            #expect(opened.value == [64])
            guard case .clipboard(let option) = try await viewerEnd.receiveMessage() else { throw TestFailure("expected --clipboard's text") }
            #expect(option.text == "--clipboard")
            guard case .screenInit = try await viewerEnd.receiveMessage() else { throw TestFailure("expected ScreenInit") }

            try await viewerEnd.sender.send(.clipboard(Clipboard(text: "엔지니어")))
            #expect(await desktop.nextSet() == "엔지니어")
            desktop.yield(.copied(String(repeating: "x", count: 65)))
            desktop.yield(.problem("not text"))
            desktop.yield(.copied("데스크톱"))
            guard case .clipboard(let copied) = try await viewerEnd.receiveMessage() else { throw TestFailure("expected the desktop's copy") }
            #expect(copied.text == "데스크톱")

            try await viewerEnd.sender.send(.bye(Bye(reason: .normal, text: "done")))
            var outcome: HostScreenSession.Outcome?
            for try await result in group { outcome = result ?? outcome }
            return outcome
        }
        #expect(outcome == .bye(Bye(reason: .normal, text: "done")))
        #expect(desktop.isStopped)
        let seen = await events.reduce(into: [String]()) { seen, event in
            switch event {
            case .clipboard(let text): seen.append("from the viewer: \(text)")
            case .clipboardSent(let text): seen.append("to the viewer: \(text)")
            case .clipboardProblem(let text): seen.append("problem: \(text)")
            default: break
            }
        }
        #expect(seen.count == 4, "\(seen)")
        #expect(seen.first == "from the viewer: 엔지니어")
        #expect(seen[1].hasPrefix("problem: The text copied on this desktop (65 bytes) is longer than a clipboard message may carry (64 bytes)"))
        #expect(seen[2...] == ["problem: not text", "to the viewer: 데스크톱"])
    }

    @Test("view only: no desktop clipboard is opened, and the viewer's Clipboard is dropped")
    func viewOnlySharesNoClipboard() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        let opened = Locked(false)
        let session = HostScreenSession(
            source: EchoSource(Self.screen),
            options: .init(
                desktopClipboard: { _ in
                    opened.update { $0 = true }
                    return FakeDesktopClipboard()
                }, consent: .granted(.viewOnly)))
        let (events, sink) = AsyncStream.makeStream(of: HostScreenSession.Event.self)
        try await withThrowingTaskGroup(of: HostScreenSession.Outcome?.self) { group in
            group.addTask {
                defer { sink.finish() }
                return try await session.run(on: hostEnd, clock: TestClock()) { sink.yield($0) }
            }
            guard case .accessGranted(let granted) = try await viewerEnd.receiveMessage() else { throw TestFailure("expected AccessGranted") }
            #expect(!granted.inputAllowed)
            guard case .screenInit = try await viewerEnd.receiveMessage() else { throw TestFailure("expected ScreenInit") }
            try await viewerEnd.sender.send(.clipboard(Clipboard(text: "dropped")))
            try await viewerEnd.sender.send(.bye(Bye(reason: .normal, text: "done")))
            for try await _ in group {}
        }
        #expect(!opened.value)
        let seen = await events.reduce(into: [String]()) { seen, event in
            switch event {
            case .clipboard, .clipboardSent, .clipboardProblem: seen.append("\(event)")
            case .inputIgnored: seen.append("ignored")
            default: break
            }
        }
        #expect(seen == ["ignored"])
    }

    @Test("a desktop clipboard that cannot be opened is reported; the session goes on")
    func unopenedClipboardIsReported() async throws {
        let (hostEnd, viewerEnd) = MemoryTransport.pair()
        let session = HostScreenSession(
            source: EchoSource(Self.screen),
            options: .init(desktopClipboard: { _ in throw ScreenSourceError(.displayUnavailable, "cannot open X display :9") }))
        let (events, sink) = AsyncStream.makeStream(of: HostScreenSession.Event.self)
        try await withThrowingTaskGroup(of: HostScreenSession.Outcome?.self) { group in
            group.addTask {
                defer { sink.finish() }
                return try await session.run(on: hostEnd, clock: TestClock()) { sink.yield($0) }
            }
            guard case .accessGranted = try await viewerEnd.receiveMessage() else { throw TestFailure("expected AccessGranted") }
            guard case .screenInit = try await viewerEnd.receiveMessage() else { throw TestFailure("expected ScreenInit") }
            try await viewerEnd.sender.send(.clipboard(Clipboard(text: "printed only")))
            try await viewerEnd.sender.send(.bye(Bye(reason: .normal, text: "done")))
            for try await _ in group {}
        }
        let problems = await events.reduce(into: [String]()) { problems, event in
            if case .clipboardProblem(let text) = event { problems.append(text) }
        }
        #expect(problems == ["The desktop's clipboard cannot be shared (cannot open X display :9): the engineer's clipboard text is only printed here."])
    }
}

/// A value behind a lock that escaping closures may share.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { self.mutex = Mutex(value) }
    var value: Value { self.mutex.withLock { $0 } }
    func update(_ change: (inout Value) -> Void) { self.mutex.withLock { change(&$0) } }
}

/// A desktop clipboard the test drives by hand.
final class FakeDesktopClipboard: DesktopClipboard {
    let events: AsyncStream<DesktopClipboardEvent>
    private let sink: AsyncStream<DesktopClipboardEvent>.Continuation
    private let sets: AsyncStream<String>
    private let setSink: AsyncStream<String>.Continuation
    private let stopped = Mutex(false)

    init() {
        (self.events, self.sink) = AsyncStream.makeStream(of: DesktopClipboardEvent.self)
        (self.sets, self.setSink) = AsyncStream.makeStream(of: String.self)
    }

    func set(text: String) async { self.setSink.yield(text) }

    func stop() {
        self.stopped.withLock { $0 = true }
        self.sink.finish()
        self.setSink.finish()
    }

    var isStopped: Bool { self.stopped.withLock { $0 } }

    func yield(_ event: DesktopClipboardEvent) { self.sink.yield(event) }

    func nextSet() async -> String? {
        var iterator = self.sets.makeAsyncIterator()
        return await iterator.next()
    }
}

/// What a clipboard's events yielded so far, collected as they come.
final class EventLog: Sendable {
    private let events = Mutex<[DesktopClipboardEvent]>([])

    init(_ clipboard: X11Clipboard) {
        let stream = clipboard.events
        Task {
            for await event in stream { self.events.withLock { $0.append(event) } }
        }
    }

    /// Waits until `count` events have come, then `settle` more to catch extra ones.
    func wait(count: Int, within limit: Duration = .seconds(8), settle: Duration = .milliseconds(300)) async throws -> [DesktopClipboardEvent] {
        let deadline = ContinuousClock.now + limit
        while self.events.withLock({ $0.count }) < count {
            guard ContinuousClock.now < deadline else {
                throw TestFailure("\(count) clipboard events expected within \(limit); came: \(self.events.withLock { $0 })")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        try await Task.sleep(for: settle)
        return self.events.withLock { $0 }
    }
}

/// A plain X client pasting: ConvertSelection into a property of its own window, INCR
/// followed (ICCCM §2.4, §2.7.2).
final class PlainXClient {
    struct Content: Equatable {
        var type: String
        var bytes: [UInt8] = []
        /// Format 32 items (ATOM, INTEGER).
        var items: [UInt] = []
        var incrementalPieces = 0
        var text: String { String(decoding: self.bytes, as: UTF8.self) }
    }

    let display: OpaquePointer
    let window: Window

    init() throws {
        self.display = try openTestDisplay()
        self.window = XCreateSimpleWindow(self.display, XDefaultRootWindow(self.display), 0, 0, 1, 1, 0, 0, 0)
        XSelectInput(self.display, self.window, PropertyChangeMask)
    }

    func close() {
        XDestroyWindow(self.display, self.window)
        XCloseDisplay(self.display)
    }

    func atom(_ name: String) -> Atom { XInternAtom(self.display, name, 0) }

    func name(of atom: Atom) -> String {
        guard let name = XGetAtomName(self.display, atom) else { return "None" }
        defer { XFree(name) }
        return String(cString: name)
    }

    func owner(of selection: String) -> Window { XGetSelectionOwner(self.display, self.atom(selection)) }

    /// Waits until `selection` has an owner that serves `text` as UTF8_STRING.
    func waitUntil(_ selection: String, holds text: String) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            if self.owner(of: selection) != 0, let content = try self.read(selection, as: "UTF8_STRING"), content.text == text { return }
            guard ContinuousClock.now < deadline else { throw TestFailure("\(selection) did not hold \(text.prefix(40)) within 5 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// `selection` converted to `target`, nil when the owner refused.
    func read(_ selection: String, as target: String) throws -> Content? {
        let property = self.atom("PLAIN_CLIENT_PASTE")
        XDeleteProperty(self.display, self.window, property)
        XConvertSelection(self.display, self.atom(selection), self.atom(target), property, self.window, 0)
        XFlush(self.display)
        let notify = try self.next("a SelectionNotify for \(target)") { $0.type == SelectionNotify }.xselection
        guard notify.property != 0 else { return nil }
        let first = self.take(property)
        guard first.type == "INCR" else { return first }
        // Deleting the INCR property (take did) asks for the first piece; an empty piece ends.
        var content = Content(type: "")
        while true {
            _ = try self.next("the next INCR piece") { event in
                event.type == PropertyNotify && event.xproperty.atom == property && event.xproperty.state == PropertyNewValue
            }
            let piece = self.take(property)
            if piece.bytes.isEmpty { return content }
            content.type = piece.type
            content.bytes += piece.bytes
            content.incrementalPieces += 1
        }
    }

    /// The property's value, deleted.
    private func take(_ property: Atom) -> Content {
        var type: Atom = 0
        var format: Int32 = 0
        var count: UInt = 0
        var after: UInt = 0
        var data: UnsafeMutablePointer<UInt8>?
        XGetWindowProperty(self.display, self.window, property, 0, 1 << 24, 1, 0, &type, &format, &count, &after, &data)
        defer { if let data { XFree(data) } }
        var content = Content(type: self.name(of: type))
        guard let data else { return content }
        switch format {
        case 8: content.bytes = Array(UnsafeBufferPointer(start: data, count: Int(count)))
        case 32: content.items = data.withMemoryRebound(to: UInt.self, capacity: Int(count)) { Array(UnsafeBufferPointer(start: $0, count: Int(count))) }
        default: break
        }
        return content
    }

    private func next(_ what: String, where matches: (XEvent) -> Bool) throws -> XEvent {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            guard XPending(self.display) > 0 else {
                usleep(2_000)
                continue
            }
            var event = XEvent()
            XNextEvent(self.display, &event)
            if matches(event) { return event }
        }
        throw TestFailure("no \(what) within 5 s")
    }
}

/// A plain X program that copied `text`: it owns `selection` and answers TARGETS and the
/// text targets it offers, on a thread of its own, until another client takes the
/// selection or `stop()`; `requests` lists the targets asked for.
///
/// `@unchecked Sendable`: after `init`, the connection is used by the serving thread only.
final class PlainSelectionOwner: @unchecked Sendable {
    private let display: OpaquePointer
    private let window: Window
    private let text: String
    private let offered: [String]
    private let state = Mutex<(requests: [String], stopping: Bool, done: Bool)>(([], false, false))

    init(selection: String, text: String, targets: [String] = ["UTF8_STRING", "STRING"]) throws {
        self.display = try openTestDisplay()
        self.window = XCreateSimpleWindow(self.display, XDefaultRootWindow(self.display), 0, 0, 1, 1, 0, 0, 0)
        self.text = text
        self.offered = targets
        let atom = XInternAtom(self.display, selection, 0)
        XSetSelectionOwner(self.display, atom, self.window, 0)
        guard XGetSelectionOwner(self.display, atom) == self.window else {
            XCloseDisplay(self.display)
            throw TestFailure("could not own \(selection)")
        }
        Thread { self.serve() }.start()
    }

    var requests: [String] { self.state.withLock { $0.requests } }

    func stop() {
        self.state.withLock { $0.stopping = true }
        while !self.state.withLock({ $0.done }) { usleep(2_000) }
    }

    private func serve() {
        defer {
            XCloseDisplay(self.display)
            self.state.withLock { $0.done = true }
        }
        func atom(_ name: String) -> Atom { XInternAtom(self.display, name, 0) }
        while !self.state.withLock({ $0.stopping }) {
            guard XPending(self.display) > 0 else {
                usleep(2_000)
                continue
            }
            var event = XEvent()
            XNextEvent(self.display, &event)
            if event.type == SelectionClear { return }
            guard event.type == SelectionRequest else { continue }
            let request = event.xselectionrequest
            let property = request.property != 0 ? request.property : request.target
            let name = XGetAtomName(self.display, request.target)
            let target = name.map { String(cString: $0) } ?? "None"
            if let name { XFree(name) }
            self.state.withLock { $0.requests.append(target) }
            var answered = true
            if target == "TARGETS" {
                let atoms = (["TARGETS"] + self.offered).map(atom)
                atoms.withUnsafeBytes {
                    _ = XChangeProperty(
                        self.display, request.requestor, property, atom("ATOM"), 32, PropModeReplace, $0.baseAddress?.assumingMemoryBound(to: UInt8.self),
                        Int32(atoms.count))
                }
            } else if self.offered.contains(target) {
                let bytes =
                    target == "STRING" ? self.text.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) } : Array(self.text.utf8)
                bytes.withUnsafeBufferPointer {
                    _ = XChangeProperty(self.display, request.requestor, property, request.target, 8, PropModeReplace, $0.baseAddress, Int32(bytes.count))
                }
            } else {
                answered = false
            }
            var reply = XEvent()
            reply.xselection = XSelectionEvent(
                type: SelectionNotify, serial: 0, send_event: 1, display: self.display, requestor: request.requestor, selection: request.selection,
                target: request.target, property: answered ? property : 0, time: request.time)
            XSendEvent(self.display, request.requestor, 0, 0, &reply)
            XFlush(self.display)
        }
    }
}
