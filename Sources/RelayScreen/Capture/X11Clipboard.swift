import CX11
import Glibc
public import RelayWire
import Synchronization

/// The clipboard of the shared X display, both ways (PROTOCOL.md §5.2.6), on an X
/// connection and a thread of its own: selection traffic never waits behind a capture on
/// the screen source's connection, and a slow or stuck clipboard owner never holds up the
/// screen.
///
/// - ``set(text:)``, the engineer's clipboard: the host owns the CLIPBOARD and PRIMARY
///   selections with the text and answers the other programs' requests for it as ICCCM §2
///   asks: TARGETS, TIMESTAMP, UTF8_STRING, `text/plain;charset=utf-8`, STRING (Latin-1,
///   `?` for characters it lacks) and TEXT (STRING when Latin-1 holds the whole text, else
///   UTF8_STRING); other targets, MULTIPLE among them, are refused. A text longer than
///   256 KiB (or than the server's largest request) goes in INCR pieces. The host serves
///   the text until another program takes the selection or ``stop()``.
/// - ``events``, the desktop's copies: when another program becomes CLIPBOARD's owner (the
///   XFIXES extension tells), the host asks it for the text as UTF8_STRING (STRING when it
///   has none) into a property of a hidden window of its own, INCR included, and yields it,
///   unless it is the text that last went either way. What was copied before ``start(display:maximumTextLength:)``
///   is not read: the engineer gets only what is copied during the session.
public final class X11Clipboard: DesktopClipboard {
    /// The display's name as Xlib resolved it (`:0`).
    public let displayName: String
    /// Texts copied on the desktop, and copies that were not passed on (too large, not
    /// text, their owner did not answer). Ends at ``stop()``.
    public let events: AsyncStream<DesktopClipboardEvent>

    private let inbox: ClipboardInbox
    private let thread: pthread_t
    private let stopped = Mutex(false)

    /// Opens `display` (`$DISPLAY` when nil) on a connection of its own and starts watching
    /// its clipboard. `maximumTextLength` is the longest text, in UTF-8 bytes, that
    /// ``events`` yields (the session's Clipboard limit): a longer copy is reported as a
    /// problem instead, and not read beyond the limit.
    public static func start(display: String?, maximumTextLength: Int = Frame.defaultMaximumPayloadLength) throws(ScreenSourceError) -> X11Clipboard {
        X11Errors.install()
        guard let name = display ?? ProcessInfoDisplay.current else {
            throw ScreenSourceError(
                .displayUnavailable, "no X display for the clipboard: DISPLAY is not set; run the host inside an X session or set --source x11:DISPLAY")
        }
        guard let connection = XOpenDisplay(name) else {
            throw ScreenSourceError(
                .displayUnavailable,
                "cannot open X display \(name) for the clipboard — is the X server still running, and may this user connect to it (xauth)?")
        }
        guard let wake = PollingThread.wakePipe() else {
            let reason = String(cString: strerror(errno))
            XCloseDisplay(connection)
            throw ScreenSourceError(.displayUnavailable, "cannot share the clipboard of X display \(name): no pipe for its thread (\(reason))")
        }
        return try X11Clipboard(connection: connection, wake: wake, maximumTextLength: maximumTextLength)
    }

    private init(connection: OpaquePointer, wake: (read: Int32, write: Int32), maximumTextLength: Int) throws(ScreenSourceError) {
        let (events, continuation) = AsyncStream.makeStream(of: DesktopClipboardEvent.self, bufferingPolicy: .bufferingNewest(16))
        let inbox = ClipboardInbox(wakeDescriptor: wake.write)
        let worker = ClipboardWorker(
            display: connection, wakeDescriptor: wake.read, inbox: inbox, continuation: continuation, maximumTextLength: max(0, maximumTextLength))
        // The worker belongs to its thread from here on: nothing else touches it.
        let thread: pthread_t
        switch PollingThread.start({ worker.run() }) {
        case .success(let started):
            thread = started
        case .failure(let error):
            worker.shutdown()
            inbox.closeWake()
            throw ScreenSourceError(.displayUnavailable, "cannot share the clipboard of X display \(worker.displayName): no thread for it (\(error))")
        }
        self.displayName = worker.displayName
        self.events = events
        self.inbox = inbox
        self.thread = thread
    }

    deinit {
        self.stop()
    }

    /// Puts `text` on the desktop's clipboard: the host owns CLIPBOARD and PRIMARY with it
    /// (an empty text is an empty clipboard). Returns once the X server has made the host
    /// their owner (a round trip on the clipboard's thread), so that a paste key injected
    /// next pastes this text. Ignored after ``stop()``.
    public func set(text: String) async {
        await withCheckedContinuation { done in self.inbox.post(text, done: done) }
    }

    /// Gives up the selections the host still owns (ICCCM: owner None at the time it took
    /// them), closes the connection and ends ``events``. Waits for the clipboard's thread,
    /// which takes a round trip to the X server. Idempotent.
    public func stop() {
        let first = self.stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        self.inbox.stop()
        pthread_join(self.thread, nil)
        self.inbox.closeWake()
    }
}

/// What other threads hand the clipboard's thread: the latest text to own and the stop
/// request, with a byte on a pipe that wakes it from `poll`.
private final class ClipboardInbox: Sendable {
    private struct State {
        var text: String?
        /// Who waits for the text to be owned (or replaced by a newer one that is).
        var waiting: [CheckedContinuation<Void, Never>] = []
        var stopping = false
        var wakeDescriptor: Int32
    }

    private let state: Mutex<State>

    init(wakeDescriptor: Int32) {
        self.state = Mutex(State(wakeDescriptor: wakeDescriptor))
    }

    /// Only the latest text matters: a newer one replaces a text not yet owned.
    func post(_ text: String, done: CheckedContinuation<Void, Never>) {
        let ignored = self.state.withLock { state in
            guard !state.stopping else { return true }
            state.text = text
            state.waiting.append(done)
            Self.wake(state.wakeDescriptor)
            return false
        }
        if ignored { done.resume() }
    }

    func stop() {
        self.state.withLock { state in
            state.stopping = true
            Self.wake(state.wakeDescriptor)
        }
    }

    func take() -> (text: String?, waiting: [CheckedContinuation<Void, Never>], stopping: Bool) {
        self.state.withLock { state in
            defer {
                state.text = nil
                state.waiting = []
            }
            return (state.text, state.waiting, state.stopping)
        }
    }

    /// After the thread has ended: nothing writes to the pipe any more, and whoever still
    /// waits for a text to be owned stops waiting.
    func closeWake() {
        let waiting = self.state.withLock { state in
            if state.wakeDescriptor >= 0 { close(state.wakeDescriptor) }
            state.wakeDescriptor = -1
            defer { state.waiting = [] }
            return state.waiting
        }
        for done in waiting { done.resume() }
    }

    private static func wake(_ descriptor: Int32) {
        guard descriptor >= 0 else { return }
        var byte: UInt8 = 1
        // A full pipe already holds a wake-up: EAGAIN is fine.
        _ = write(descriptor, &byte, 1)
    }
}

/// The atoms the clipboard uses, interned once per connection.
struct SelectionAtoms: Hashable {
    var clipboard: Atom
    var primary: Atom
    var targets: Atom
    var timestamp: Atom
    var utf8String: Atom
    var textPlainUTF8: Atom
    var string: Atom
    var text: Atom
    var atom: Atom
    var integer: Atom
    var incremental: Atom
    /// The property of the hidden window that receives the desktop's copies.
    var transfer: Atom
    /// The property appended to (with nothing) to learn the server's time.
    var clock: Atom

    init(
        clipboard: Atom, primary: Atom, targets: Atom, timestamp: Atom, utf8String: Atom, textPlainUTF8: Atom, string: Atom, text: Atom, atom: Atom,
        integer: Atom, incremental: Atom, transfer: Atom, clock: Atom
    ) {
        self.clipboard = clipboard
        self.primary = primary
        self.targets = targets
        self.timestamp = timestamp
        self.utf8String = utf8String
        self.textPlainUTF8 = textPlainUTF8
        self.string = string
        self.text = text
        self.atom = atom
        self.integer = integer
        self.incremental = incremental
        self.transfer = transfer
        self.clock = clock
    }

    init(interning display: OpaquePointer) {
        func intern(_ name: String) -> Atom { XInternAtom(display, name, 0) }
        self.init(
            clipboard: intern("CLIPBOARD"), primary: intern("PRIMARY"), targets: intern("TARGETS"), timestamp: intern("TIMESTAMP"),
            utf8String: intern("UTF8_STRING"), textPlainUTF8: intern("text/plain;charset=utf-8"), string: intern("STRING"), text: intern("TEXT"),
            atom: intern("ATOM"), integer: intern("INTEGER"), incremental: intern("INCR"), transfer: intern("SUPPORTRELAY_CLIPBOARD"),
            clock: intern("SUPPORTRELAY_CLOCK"))
    }
}

/// The text the host owns the selections with, in the forms requestors ask for (ICCCM §2.6).
struct SelectionOffer: Hashable {
    let utf8: [UInt8]
    /// ISO Latin-1, `?` for each character Latin-1 lacks.
    let latin1: [UInt8]
    /// Whether Latin-1 holds the whole text.
    let isLatin1: Bool
    /// The server time at which the host took the selections.
    let time: Time

    init(text: String, time: Time) {
        self.utf8 = Array(text.utf8)
        let scalars = text.unicodeScalars
        self.latin1 = scalars.map { $0.value < 0x100 ? UInt8($0.value) : UInt8(ascii: "?") }
        self.isLatin1 = scalars.allSatisfy { $0.value < 0x100 }
        self.time = time
    }

    /// What goes into the requestor's property.
    enum Answer: Hashable {
        /// Format 32 items of `type` (ATOM, INTEGER).
        case items(type: Atom, [UInt])
        /// Format 8 bytes of `type`.
        case bytes(type: Atom, [UInt8])
        /// The target is not offered: the requestor gets property None.
        case refused
    }

    func answer(target: Atom, atoms: SelectionAtoms) -> Answer {
        switch target {
        case atoms.targets:
            .items(type: atoms.atom, [atoms.targets, atoms.timestamp, atoms.utf8String, atoms.textPlainUTF8, atoms.string, atoms.text])
        case atoms.timestamp:
            .items(type: atoms.integer, [self.time])
        case atoms.utf8String, atoms.textPlainUTF8:
            .bytes(type: target, self.utf8)
        case atoms.string:
            .bytes(type: atoms.string, self.latin1)
        case atoms.text:
            // TEXT lets the owner choose the encoding: STRING where it loses nothing.
            self.isLatin1 ? .bytes(type: atoms.string, self.latin1) : .bytes(type: atoms.utf8String, self.utf8)
        default:
            .refused
        }
    }

    /// A property's bytes as text: STRING is Latin-1; UTF8_STRING and anything else is
    /// read as UTF-8, a malformed sequence becoming U+FFFD.
    static func text(of bytes: [UInt8], type: Atom, atoms: SelectionAtoms) -> String {
        if type == atoms.string {
            var scalars = String.UnicodeScalarView()
            scalars.append(contentsOf: bytes.map { Unicode.Scalar($0) })
            return String(scalars)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The X server's time: milliseconds in 32 bits, wrapping every 49.7 days.
enum ClipboardTime {
    /// Whether a request's time comes before the ownership's (ICCCM §2.2: such a request
    /// is refused); CurrentTime (0) never does.
    static func isEarlier(_ time: Time, than owned: Time) -> Bool {
        guard time != 0 else { return false }
        return Int32(bitPattern: UInt32(truncatingIfNeeded: time) &- UInt32(truncatingIfNeeded: owned)) < 0
    }
}

/// An INCR transfer to a requestor (ICCCM §2.7.2): after the requestor deletes the
/// property, the next piece; after the last piece, an empty one ends it.
struct IncrementalTransfer {
    let requestor: Window
    let property: Atom
    let type: Atom
    let bytes: [UInt8]
    private(set) var offset = 0
    private(set) var isFinished = false
    var deadline: ContinuousClock.Instant

    init(requestor: Window, property: Atom, type: Atom, bytes: [UInt8], deadline: ContinuousClock.Instant) {
        self.requestor = requestor
        self.property = property
        self.type = type
        self.bytes = bytes
        self.deadline = deadline
    }

    /// The next piece of at most `size` bytes, empty for the end; nil once the end was given.
    mutating func next(size: Int) -> ArraySlice<UInt8>? {
        guard !self.isFinished else { return nil }
        let end = min(self.offset + size, self.bytes.count)
        let piece = self.bytes[self.offset..<end]
        self.offset = end
        if piece.isEmpty { self.isFinished = true }
        return piece
    }
}

/// The clipboard's X connection and state, used by its thread alone.
private final class ClipboardWorker {
    /// How long an owner may take to answer a conversion or to write the next INCR piece,
    /// and a requestor to take the next piece of ours.
    static let answerTimeout: Duration = .seconds(5)
    static let transferTimeout: Duration = .seconds(10)

    let display: OpaquePointer
    let displayName: String
    private let window: Window
    private let atoms: SelectionAtoms
    /// XFIXES's first event number; nil when the server lacks the extension.
    private let fixesEventBase: Int32?
    /// The largest property written in one request; larger texts go INCR.
    private let pieceSize: Int
    private let maximumTextLength: Int
    private let wakeDescriptor: Int32
    private let inbox: ClipboardInbox
    private let continuation: AsyncStream<DesktopClipboardEvent>.Continuation

    /// The engineer's text while the host owns a selection with it.
    private var offer: SelectionOffer?
    private var owned: Set<Atom> = []
    private var transfers: [IncrementalTransfer] = []
    /// The desktop's copy being read, and the time of a newer owner's to read next.
    private var conversion: Conversion?
    private var nextConversion: Time?
    /// The text that last went either way: not sent again.
    private var shared: String?
    private var isShutDown = false

    private struct Conversion {
        var target: Atom
        let time: Time
        var deadline: ContinuousClock.Instant
        /// INCR: what arrived so far; nil until the owner announces INCR.
        var incoming: Incoming?
        /// CLIPBOARD changed owner meanwhile: this copy is no longer the desktop's.
        var isStale = false
    }

    private struct Incoming {
        var type: Atom = 0
        var bytes: [UInt8] = []
        var length = 0
        /// Why the copy cannot be passed on, once a piece showed it.
        var failure: DesktopClipboardEvent?
    }

    init(
        display: OpaquePointer, wakeDescriptor: Int32, inbox: ClipboardInbox, continuation: AsyncStream<DesktopClipboardEvent>.Continuation,
        maximumTextLength: Int
    ) {
        self.display = display
        self.displayName = String(cString: XDisplayString(display))
        self.wakeDescriptor = wakeDescriptor
        self.inbox = inbox
        self.continuation = continuation
        self.maximumTextLength = maximumTextLength
        self.atoms = SelectionAtoms(interning: display)
        // An unmapped 1×1 window: the selections' owner and the requestor of conversions.
        self.window = XCreateSimpleWindow(display, XDefaultRootWindow(display), -10, -10, 1, 1, 0, 0, 0)
        XSelectInput(display, self.window, PropertyChangeMask)
        var eventBase: Int32 = 0
        var errorBase: Int32 = 0
        var major: Int32 = 0
        var minor: Int32 = 0
        if XFixesQueryExtension(display, &eventBase, &errorBase) != 0, XFixesQueryVersion(display, &major, &minor) != 0 {
            XFixesSelectSelectionInput(display, self.window, self.atoms.clipboard, UInt(XFixesSetSelectionOwnerNotifyMask))
            self.fixesEventBase = eventBase
        } else {
            self.fixesEventBase = nil
            continuation.yield(
                .problem(
                    "X display \(self.displayName) has no XFIXES extension, so the host cannot notice copies on the desktop: they are not sent to the engineer (the engineer's clipboard still reaches the desktop)."
                ))
        }
        let extended = XExtendedMaxRequestSize(display)
        let words = extended > 0 ? extended : XMaxRequestSize(display)
        // As GTK and Qt do: at most 256 KiB in one property, less the request's header.
        self.pieceSize = max(4096, min(256 * 1024, words * 4 - 100))
        XFlush(display)
    }

    // MARK: The thread's loop

    func run() {
        while true {
            let (text, waiting, stopping) = self.inbox.take()
            if let text, !stopping { self.own(text) }
            for done in waiting { done.resume() }
            if stopping { break }
            self.expire(now: .now)
            // XPending flushes and reads; replies awaited while handling queue more events.
            while XPending(self.display) > 0 {
                var event = XEvent()
                XNextEvent(self.display, &event)
                self.handle(&event)
            }
            // Nothing queued and everything sent. No Xlib call may come between here and
            // `poll`: XFlush, for one, reads what has arrived into Xlib's queue, where `poll`
            // cannot see it, and a copy's answer would then wait for its timeout.
            var descriptors = [
                pollfd(fd: XConnectionNumber(self.display), events: Int16(POLLIN), revents: 0),
                pollfd(fd: self.wakeDescriptor, events: Int16(POLLIN), revents: 0),
            ]
            _ = poll(&descriptors, 2, self.pollTimeout(now: .now))
            if descriptors[1].revents != 0 { self.drainWakeups() }
        }
        self.shutdown()
    }

    /// Gives the selections up, closes the connection and ends the events. Idempotent.
    func shutdown() {
        guard !self.isShutDown else { return }
        self.isShutDown = true
        for selection in self.owned where XGetSelectionOwner(self.display, selection) == self.window {
            XSetSelectionOwner(self.display, selection, 0, self.offer?.time ?? 0)
        }
        for requestor in Set(self.transfers.map(\.requestor)) { XSelectInput(self.display, requestor, NoEventMask) }
        XDestroyWindow(self.display, self.window)
        X11Errors.clear(self.display)
        XCloseDisplay(self.display)
        close(self.wakeDescriptor)
        self.continuation.finish()
    }

    private func pollTimeout(now: ContinuousClock.Instant) -> Int32 {
        let deadlines = self.transfers.map(\.deadline) + (self.conversion.map { [$0.deadline] } ?? [])
        guard let next = deadlines.min() else { return -1 }
        let left = now.duration(to: next)
        guard left > .zero else { return 0 }
        let milliseconds = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1
        return Int32(min(milliseconds, 60_000))
    }

    private func drainWakeups() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while Glibc.read(self.wakeDescriptor, &buffer, buffer.count) > 0 {}
    }

    private func handle(_ event: inout XEvent) {
        switch event.type {
        case SelectionRequest:
            self.answer(event.xselectionrequest)
        case SelectionClear:
            let clear = event.xselectionclear
            guard clear.window == self.window else { return }
            // Another program took the selection: it serves it from now on.
            self.owned.remove(clear.selection)
            if self.owned.isEmpty { self.offer = nil }
        case SelectionNotify:
            self.converted(event.xselection)
        case PropertyNotify:
            self.propertyChanged(event.xproperty)
        default:
            if let base = self.fixesEventBase, event.type == base + XFixesSelectionNotify {
                let notify = withUnsafeBytes(of: &event) { $0.load(as: XFixesSelectionNotifyEvent.self) }
                self.ownerChanged(notify)
            }
        }
    }

    private func expire(now: ContinuousClock.Instant) {
        if let conversion = self.conversion, conversion.deadline <= now {
            self.finish(
                .problem(
                    "The program that copied on this desktop did not hand over the text within \(Self.answerTimeout.components.seconds) s: the copy was not sent to the engineer."
                ))
        }
        let expired = self.transfers.filter { $0.deadline <= now }
        guard !expired.isEmpty else { return }
        self.transfers.removeAll { $0.deadline <= now }
        for transfer in expired { self.stopWatching(transfer.requestor) }
    }

    // MARK: The engineer's text on the desktop

    private func own(_ text: String) {
        let time = self.serverTime()
        self.offer = SelectionOffer(text: text, time: time)
        self.owned = []
        for selection in [self.atoms.clipboard, self.atoms.primary] {
            XSetSelectionOwner(self.display, selection, self.window, time)
            if XGetSelectionOwner(self.display, selection) == self.window { self.owned.insert(selection) }
        }
        self.shared = text
        // A copy being read is older than the engineer's text now on the clipboard.
        self.conversion?.isStale = true
        self.nextConversion = nil
        if !self.owned.contains(self.atoms.clipboard) {
            self.continuation.yield(
                .problem("The engineer's clipboard could not be put on this desktop: the X server did not give the host the CLIPBOARD selection."))
        }
    }

    /// A timestamp from the server (ICCCM §2.1: never CurrentTime for an ownership): the
    /// time of the PropertyNotify that appending nothing to a property of ours causes.
    private func serverTime() -> Time {
        XChangeProperty(self.display, self.window, self.atoms.clock, self.atoms.integer, 32, PropModeAppend, nil, 0)
        var event = XEvent()
        var wanted: [UInt] = [self.window, self.atoms.clock]
        wanted.withUnsafeMutableBytes { argument in
            _ = XIfEvent(
                self.display, &event,
                { _, event, argument in
                    guard let event, let argument else { return 0 }
                    let wanted = UnsafeRawPointer(argument).assumingMemoryBound(to: UInt.self)
                    guard event.pointee.type == PropertyNotify else { return 0 }
                    let property = event.pointee.xproperty
                    return property.window == wanted[0] && property.atom == wanted[1] ? 1 : 0
                }, argument.baseAddress?.assumingMemoryBound(to: CChar.self))
        }
        return event.xproperty.time
    }

    /// Answers a SelectionRequest (ICCCM §2.2): the text in the target's form in the
    /// requestor's property, or property None when refused; then SelectionNotify.
    private func answer(_ request: XSelectionRequestEvent) {
        // An obsolete requestor names no property: the target's name is used.
        let property = request.property != 0 ? request.property : request.target
        var answered = false
        if request.owner == self.window, self.owned.contains(request.selection), let offer = self.offer,
            !ClipboardTime.isEarlier(request.time, than: offer.time)
        {
            answered = self.write(offer.answer(target: request.target, atoms: self.atoms), to: request.requestor, property: property)
        }
        var reply = XEvent()
        reply.xselection = XSelectionEvent(
            type: SelectionNotify, serial: 0, send_event: 1, display: self.display, requestor: request.requestor, selection: request.selection,
            target: request.target, property: answered ? property : 0, time: request.time)
        XSendEvent(self.display, request.requestor, 0, NoEventMask, &reply)
    }

    private func write(_ answer: SelectionOffer.Answer, to requestor: Window, property: Atom) -> Bool {
        switch answer {
        case .refused:
            return false
        case .items(let type, let items):
            items.withUnsafeBytes { bytes in
                _ = XChangeProperty(
                    self.display, requestor, property, type, 32, PropModeReplace, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(items.count))
            }
            return true
        case .bytes(let type, let bytes) where bytes.count > self.pieceSize:
            // INCR (ICCCM §2.7.2): watch the requestor's property before announcing the size;
            // each deletion asks for the next piece.
            self.transfers.removeAll { $0.requestor == requestor && $0.property == property }
            XSelectInput(self.display, requestor, PropertyChangeMask)
            let size = [UInt(bytes.count)]
            size.withUnsafeBytes { size in
                _ = XChangeProperty(
                    self.display, requestor, property, self.atoms.incremental, 32, PropModeReplace, size.baseAddress?.assumingMemoryBound(to: UInt8.self), 1)
            }
            self.transfers.append(
                IncrementalTransfer(requestor: requestor, property: property, type: type, bytes: bytes, deadline: .now + Self.transferTimeout))
            return true
        case .bytes(let type, let bytes):
            self.change(requestor, property, type: type, bytes[...])
            return true
        }
    }

    private func change(_ window: Window, _ property: Atom, type: Atom, _ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBufferPointer { bytes in
            _ = XChangeProperty(self.display, window, property, type, 8, PropModeReplace, bytes.baseAddress, Int32(bytes.count))
        }
    }

    private func stopWatching(_ requestor: Window) {
        guard requestor != self.window, !self.transfers.contains(where: { $0.requestor == requestor }) else { return }
        XSelectInput(self.display, requestor, NoEventMask)
    }

    // MARK: The desktop's copies to the engineer

    private func ownerChanged(_ notify: XFixesSelectionNotifyEvent) {
        guard notify.selection == self.atoms.clipboard else { return }
        self.conversion?.isStale = true
        self.nextConversion = nil
        // The host's own ownership, or none (the owner quit): nothing to read.
        guard notify.owner != 0, notify.owner != self.window else { return }
        if self.conversion == nil {
            self.convert(target: self.atoms.utf8String, time: notify.timestamp)
        } else {
            // One conversion at a time on the one property: this one after the current.
            self.nextConversion = notify.timestamp
        }
    }

    private func convert(target: Atom, time: Time) {
        XDeleteProperty(self.display, self.window, self.atoms.transfer)
        XConvertSelection(self.display, self.atoms.clipboard, target, self.atoms.transfer, self.window, time)
        self.conversion = Conversion(target: target, time: time, deadline: .now + Self.answerTimeout)
    }

    private func converted(_ notify: XSelectionEvent) {
        guard notify.requestor == self.window, notify.selection == self.atoms.clipboard, var conversion = self.conversion,
            conversion.incoming == nil, notify.target == conversion.target
        else { return }
        guard notify.property != 0 else {
            if conversion.target == self.atoms.utf8String, !conversion.isStale {
                // An older program may offer Latin-1 only.
                self.convert(target: self.atoms.string, time: conversion.time)
            } else {
                self.finish(self.notText)
            }
            return
        }
        guard let header = self.header(of: notify.property) else { return self.finish(self.unreadable) }
        if header.type == self.atoms.incremental {
            // Deleting the INCR property asks for the first piece.
            conversion.incoming = Incoming()
            conversion.deadline = .now + Self.answerTimeout
            self.conversion = conversion
            XDeleteProperty(self.display, self.window, notify.property)
            return
        }
        guard header.length <= self.maximumTextLength else {
            XDeleteProperty(self.display, self.window, notify.property)
            return self.finish(self.tooLarge(header.length))
        }
        guard header.format == 8 else {
            XDeleteProperty(self.display, self.window, notify.property)
            return self.finish(self.notText)
        }
        guard let bytes = self.read(notify.property, length: header.length) else {
            XDeleteProperty(self.display, self.window, notify.property)
            return self.finish(self.unreadable)
        }
        self.finish(.copied(SelectionOffer.text(of: bytes, type: header.type, atoms: self.atoms)))
    }

    private func propertyChanged(_ event: XPropertyEvent) {
        if event.window == self.window {
            if event.atom == self.atoms.transfer, event.state == PropertyNewValue, self.conversion?.incoming != nil { self.receivePiece() }
            return
        }
        guard event.state == PropertyDelete, let index = self.transfers.firstIndex(where: { $0.requestor == event.window && $0.property == event.atom })
        else { return }
        guard let piece = self.transfers[index].next(size: self.pieceSize) else { return }
        self.change(event.window, event.atom, type: self.transfers[index].type, piece)
        self.transfers[index].deadline = .now + Self.transferTimeout
        if self.transfers[index].isFinished {
            let requestor = self.transfers.remove(at: index).requestor
            self.stopWatching(requestor)
        }
    }

    /// The next INCR piece of the desktop's copy; an empty one ends it.
    private func receivePiece() {
        guard var conversion = self.conversion, var incoming = conversion.incoming, let header = self.header(of: self.atoms.transfer) else { return }
        if header.length == 0 {
            XDeleteProperty(self.display, self.window, self.atoms.transfer)
            if let failure = incoming.failure { return self.finish(failure) }
            if incoming.length > self.maximumTextLength { return self.finish(self.tooLarge(incoming.length)) }
            return self.finish(.copied(SelectionOffer.text(of: incoming.bytes, type: incoming.type, atoms: self.atoms)))
        }
        incoming.length += header.length
        incoming.type = header.type
        if header.format != 8 { incoming.failure = incoming.failure ?? self.notText }
        if incoming.failure == nil, incoming.length <= self.maximumTextLength {
            if let bytes = self.read(self.atoms.transfer, length: header.length) {
                incoming.bytes += bytes
            } else {
                incoming.failure = self.unreadable
            }
        }
        if incoming.failure != nil || incoming.length > self.maximumTextLength {
            // The rest is taken and dropped, so that the owner finishes its transfer.
            incoming.bytes = []
            XDeleteProperty(self.display, self.window, self.atoms.transfer)
        }
        conversion.incoming = incoming
        conversion.deadline = .now + Self.answerTimeout
        self.conversion = conversion
    }

    private func finish(_ result: DesktopClipboardEvent) {
        let stale = self.conversion?.isStale ?? true
        self.conversion = nil
        if let time = self.nextConversion {
            // A newer copy is waiting: this result is out of date.
            self.nextConversion = nil
            return self.convert(target: self.atoms.utf8String, time: time)
        }
        guard !stale else { return }
        if case .copied(let text) = result {
            // Latin-1 grows in UTF-8, and a malformed sequence becomes three bytes.
            if text.utf8.count > self.maximumTextLength {
                self.continuation.yield(self.tooLarge(text.utf8.count))
                return
            }
            guard text != self.shared else { return }
            self.shared = text
        }
        self.continuation.yield(result)
    }

    private var notText: DesktopClipboardEvent {
        .problem("What was copied on this desktop is not text (perhaps an image or files): it was not sent to the engineer.")
    }

    private var unreadable: DesktopClipboardEvent {
        .problem("The text copied on this desktop could not be read from the program that holds it: it was not sent to the engineer; copy it again.")
    }

    private func tooLarge(_ length: Int) -> DesktopClipboardEvent {
        .problem(
            "The text copied on this desktop (\(length) bytes) is longer than a clipboard message may carry (\(self.maximumTextLength) bytes): it was not sent to the engineer; copy less at a time."
        )
    }

    /// A property's type, format and length in bytes, without its data.
    private func header(of property: Atom) -> (type: Atom, format: Int32, length: Int)? {
        var type: Atom = 0
        var format: Int32 = 0
        var items: UInt = 0
        var after: UInt = 0
        var data: UnsafeMutablePointer<UInt8>?
        let status = XGetWindowProperty(self.display, self.window, property, 0, 0, 0, 0, &type, &format, &items, &after, &data)
        if let data { XFree(data) }
        guard status == Success, type != 0 else { return nil }
        return (type, format, Int(after))
    }

    /// A format-8 property's bytes, deleting it (which an INCR owner takes as "next").
    private func read(_ property: Atom, length: Int) -> [UInt8]? {
        var type: Atom = 0
        var format: Int32 = 0
        var items: UInt = 0
        var after: UInt = 0
        var data: UnsafeMutablePointer<UInt8>?
        let status = XGetWindowProperty(self.display, self.window, property, 0, (length + 3) / 4, 1, 0, &type, &format, &items, &after, &data)
        defer { if let data { XFree(data) } }
        guard status == Success, format == 8, after == 0 else { return nil }
        guard let data else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: Int(items)))
    }
}
