public import Crypto
import NIOCore
public import RelayWire
import Synchronization

/// A paired session's transport with end-to-end encryption (PROTOCOL.md §5.3): every
/// peer message is sealed on the way out and opened on the way in; relay control frames
/// (Bye, Error) pass as they are, since the relay must read them. The screen sessions
/// run on it unchanged, as on any ``FrameTransport``.
///
/// Made by ``establish(over:local:sessionID:)``, which runs the handshake. A record that
/// does not open, a plaintext peer message, or anything the protocol does not allow ends
/// the session: the transport tells the other side with `Bye(protocol_error)` and throws
/// a ``SecureChannelError``.
public final class SecureTransport<Base: FrameTransport>: FrameTransport {
    public typealias Sender = SecureSender<Base.Sender>

    private let base: Base
    public let sender: SecureSender<Base.Sender>
    private var opener: RecordOpener
    /// Who is at the other end, as its key signed the handshake.
    public let peer: PeerIdentity
    /// The six digits both sides show; equal only if nobody is in between.
    public let shortAuthenticationString: String
    private let peerRole: String

    /// Sealing adds an inner type byte and a tag: senders split what is larger (§7.6).
    public var maximumPayloadLength: Int { self.base.maximumPayloadLength - SecureChannelProtocol.recordOverhead }

    init(base: Base, role: Role, established: SecureHandshake.Established) {
        self.base = base
        self.sender = SecureSender(
            base: base.sender, sealer: established.sealer, maximumInnerPayload: base.maximumPayloadLength - SecureChannelProtocol.recordOverhead)
        self.opener = established.opener
        self.peer = established.peer
        self.shortAuthenticationString = established.secrets.shortAuthenticationString
        self.peerRole = role == .host ? "viewer" : "host"
    }

    /// How a handshake ended.
    public enum Establishment {
        case established(SecureTransport<Base>)
        /// The relay or the other side said Bye first (the other side left, the relay shut down).
        case ended(Bye)
        /// The connection closed first.
        case closed
        /// The relay refused or ended the session with an Error (its code and words).
        case relayError(ErrorMessage)
    }

    /// Runs the end-to-end handshake on a paired connection, right after Paired and
    /// before any other peer message. Relay control frames that arrive meanwhile end it
    /// (Bye) or are passed to the caller as the transport's errors.
    public static func establish(
        over base: Base, local: SecureHandshake.Local, sessionID: SessionID, ephemeral: Curve25519.KeyAgreement.PrivateKey = .init(),
        deadline: Duration = .seconds(30)
    ) async throws -> Establishment {
        // An old relay-agent on the other side never answers: give up after `deadline`.
        let expired = ExpiryFlag()
        let sender = base.sender
        return try await withThrowingTaskGroup(of: Void.self) { group in
            let role = local.role
            group.addTask {
                try await Task.sleep(for: deadline)
                expired.set()
                await endSession(sender, noHandshake(within: deadline, role: role))
                sender.close()
            }
            defer { group.cancelAll() }
            let outcome = try await Self.handshake(over: base, local: local, sessionID: sessionID, ephemeral: ephemeral)
            if expired.isSet { throw noHandshake(within: deadline, role: local.role) }
            return outcome
        }
    }

    private static func handshake(
        over base: Base, local: SecureHandshake.Local, sessionID: SessionID, ephemeral: Curve25519.KeyAgreement.PrivateKey
    ) async throws -> Establishment {
        var handshake = SecureHandshake(local, sessionID: sessionID, ephemeral: ephemeral)
        do {
            try await base.sender.send(frames: try handshake.start())
            while let frame = try await base.receiveFrame() {
                guard frame.type.isPeerMessage else {
                    switch try? RelayMessage(frame) {
                    case .bye(let bye): return .ended(bye)
                    case .error(let error): return .relayError(error)
                    // A late Pong (or a Ping the transport passed on) is no business of the handshake.
                    case .ping, .pong: continue
                    default:
                        throw SecureChannelError(
                            .endedDuringHandshake, "the relay sent \(frame.type.name) during the end-to-end handshake; the session was ended")
                    }
                }
                switch try handshake.received(frame) {
                case .send(let frames):
                    try await base.sender.send(frames: frames)
                case .established(let frames, let established):
                    // Usually nothing is left to send; an empty send on a connection the
                    // other side already closed would fail before its Bye could be read.
                    if !frames.isEmpty { try await base.sender.send(frames: frames) }
                    return .established(SecureTransport(base: base, role: local.role, established: established))
                }
            }
            return .closed
        } catch let error as SecureChannelError {
            await endSession(base.sender, error)
            throw error
        }
    }

    /// The next frame: a peer message, opened, or a relay control frame as it came.
    public func receiveFrame() async throws -> Frame? {
        guard let frame = try await self.base.receiveFrame() else { return nil }
        guard frame.type.isPeerMessage else { return frame }
        do {
            guard frame.type == .sealed else {
                // The peer proved it encrypts (its Identity record opened): a plaintext peer
                // message now can only have been put in on the way.
                throw frame.type.rawValue < MessageType.keyCommit.rawValue
                    ? SecureChannelError.tampered("a plaintext \(frame.type.name) arrived in the encrypted session")
                    : SecureChannelError(
                        .unexpectedMessage, "the \(self.peerRole) sent \(frame.type.name) after the end-to-end handshake; the session was ended")
            }
            let opened: (type: UInt8, payload: ByteBuffer)
            do {
                opened = try self.opener.open(frame)
            } catch {
                // The relay completed a record whose sender left mid-frame with zero bytes
                // (§2.3), and its Bye or Error follows: that is why the session ends.
                guard Self.mayBeCutShort(frame), let next = try await self.base.receiveFrame() else { throw error }
                switch try? RelayMessage(next) {
                case .bye, .error: return next
                default: throw error
                }
            }
            let (type, payload) = opened
            guard let inner = MessageType(rawValue: type), inner.isPeerMessage, inner.rawValue < MessageType.keyCommit.rawValue else {
                throw SecureChannelError(
                    .unexpectedMessage,
                    "the \(self.peerRole) sealed a message of type \(type), which is not a screen, input or clipboard message; the session was ended")
            }
            return try Frame(type: inner, payload: payload)
        } catch let error as SecureChannelError {
            await endSession(self.base.sender, error)
            throw error
        }
    }

    /// Whether a record that did not open may be one the relay completed with zero bytes
    /// (§2.3): it ends in a zero byte. Only a Bye or Error right after it confirms that.
    static func mayBeCutShort(_ frame: Frame) -> Bool {
        frame.payload.getInteger(at: frame.payload.writerIndex - 1, as: UInt8.self) == 0
    }

}

/// The sending half of a ``SecureTransport``: seals peer messages in the order they go
/// out. Sends from several tasks are serialised, because each record's sequence number
/// must match its place on the wire.
public struct SecureSender<Base: FrameSender>: FrameSender {
    private let base: Base
    private let queue: SealingQueue

    init(base: Base, sealer: RecordSealer, maximumInnerPayload: Int) {
        self.base = base
        self.queue = SealingQueue(sealer, maximumInnerPayload: maximumInnerPayload)
    }

    public func send(frames: [Frame]) async throws {
        let (ticket, out) = try self.queue.seal(frames)
        await self.queue.turns.wait(for: ticket)
        defer { self.queue.turns.done(ticket) }
        do {
            try self.queue.checkIntact()
            try await self.base.send(frames: out)
        } catch {
            // A record that was sealed but not sent leaves a gap the peer cannot open past:
            // nothing more is sealed on this channel.
            self.queue.broke()
            throw error
        }
    }

    public func close() {
        self.base.close()
    }
}

/// One direction's sealer, and the turns that keep records on the wire in sequence order.
final class SealingQueue: Sendable {
    private struct State {
        var sealer: RecordSealer
        var broken = false
    }

    private let state: Mutex<State>
    private let maximumInnerPayload: Int
    let turns = SendTurns()

    init(_ sealer: RecordSealer, maximumInnerPayload: Int) {
        self.state = Mutex(State(sealer: sealer))
        self.maximumInnerPayload = maximumInnerPayload
    }

    /// Seals the peer messages among `frames` (control frames stay as they are) and takes
    /// the turn to send them, under one lock. All or nothing: a batch that cannot be
    /// sealed uses no sequence number.
    func seal(_ frames: [Frame]) throws -> (ticket: UInt64, frames: [Frame]) {
        try self.state.withLock { state in
            guard !state.broken else { throw SealingQueue.brokenError }
            var sealer = state.sealer
            let out = try frames.map { frame in
                guard frame.type.isPeerMessage else { return frame }
                guard frame.payload.readableBytes <= self.maximumInnerPayload else {
                    throw SecureChannelError(
                        .unexpectedMessage,
                        "a \(frame.type.name) of \(frame.payload.readableBytes) bytes is larger than the \(self.maximumInnerPayload) bytes a sealed record may carry here; it was not sent (a bug in relay-agent: please report it)"
                    )
                }
                return try sealer.seal(type: frame.type.rawValue, payload: frame.payload)
            }
            state.sealer = sealer
            return (self.turns.take(), out)
        }
    }

    /// Throws when an earlier send failed.
    func checkIntact() throws {
        if self.state.withLock({ $0.broken }) { throw SealingQueue.brokenError }
    }

    func broke() {
        self.state.withLock { $0.broken = true }
    }

    static let brokenError = SecureChannelError(
        .sendFailed, "an earlier message could not be sent, so this end-to-end channel cannot go on; the session ends. Connect again")
}

/// Hands out turns in order and lets each through once the one before it is done.
final class SendTurns: Sendable {
    private struct State {
        var next: UInt64 = 0
        var serving: UInt64 = 0
        var waiting: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    func take() -> UInt64 {
        self.state.withLock { state in
            defer { state.next += 1 }
            return state.next
        }
    }

    func wait(for ticket: UInt64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = self.state.withLock { state in
                if state.serving == ticket { return true }
                state.waiting[ticket] = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }

    func done(_ ticket: UInt64) {
        let next = self.state.withLock { state in
            state.serving = ticket + 1
            return state.waiting.removeValue(forKey: state.serving)
        }
        next?.resume()
    }
}

/// Set once by the handshake's deadline.
final class ExpiryFlag: Sendable {
    private let flag = Atomic(false)
    var isSet: Bool { self.flag.load(ordering: .acquiring) }
    func set() { self.flag.store(true, ordering: .releasing) }
}

/// Tells the other side, through the relay, why this side ends the session.
func endSession(_ sender: some FrameSender, _ error: SecureChannelError) async {
    let text = String(error.description.utf8.prefix(1000)) ?? "end-to-end check failed"
    try? await sender.send(.bye(Bye(reason: .protocolError, text: text)))
}

func noHandshake(within deadline: Duration, role: Role) -> SecureChannelError {
    SecureChannelError(
        .endedDuringHandshake,
        "the \(role == .host ? "viewer" : "host") did not complete the end-to-end handshake within \(deadline.components.seconds) s: it may be an old relay-agent without end-to-end encryption; the session was ended. Update relay-agent on both sides"
    )
}
