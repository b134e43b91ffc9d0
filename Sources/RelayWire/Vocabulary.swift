// The small value types that messages are made of (PROTOCOL.md §3 and §6).

/// Protocol-wide constants.
public enum RelayProtocol {
    /// The version a Hello carries; a relay answers any other with `unsupportedVersion`.
    public static let version: UInt16 = 1
    /// The TLS ALPN token both sides offer (PROTOCOL.md §1).
    public static let alpnToken = "supportrelay/1"
    /// The TCP port a relay listens on by default.
    public static let defaultPort = 7443
}

/// Which end of a session a connection is.
public enum Role: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The endpoint PC that shares its screen (`relay-agent host`).
    case host = 1
    /// The support engineer's side (`relay-agent view`).
    case viewer = 2

    public var description: String { self == .host ? "host" : "viewer" }
}

/// How a session was paired.
public enum PairingMode: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// By a one-time support code the customer typed in.
    case attended = 1
    /// By host id, to a host enrolled for the engineer's company.
    case unattended = 2

    public var description: String { self == .attended ? "attended" : "unattended" }
}

/// Features a side supports, as a UInt32 bit set. Unknown bits are carried as they are
/// and ignored, so a newer peer can announce features an older one does not know.
public struct Capabilities: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Screen updates in the tile-delta codec, version 1.
    public static let screenTiles = Capabilities(rawValue: 1 << 0)
    /// Pointer and keyboard input.
    public static let input = Capabilities(rawValue: 1 << 1)
    /// Clipboard text in both directions.
    public static let clipboard = Capabilities(rawValue: 1 << 2)
    /// The viewer keeps a glyph table: screen updates may use the glyphs encoding.
    public static let glyphs = Capabilities(rawValue: 1 << 3)

    public static let all: Capabilities = [.screenTiles, .input, .clipboard, .glyphs]
}

/// A one-time six-digit support code, `000000`…`999999`. On the wire: six ASCII digits.
public struct SupportCode: Sendable, Hashable, CustomStringConvertible {
    /// The code as a number below 1,000,000.
    public let value: UInt32

    public init?(value: UInt32) {
        guard value < 1_000_000 else { return nil }
        self.value = value
    }

    /// Parses exactly six ASCII digits; spaces and dashes people type are allowed and dropped.
    public init?(_ text: some StringProtocol) {
        let digits = text.unicodeScalars.filter { $0 != " " && $0 != "-" }
        guard digits.count == 6, digits.allSatisfy({ ("0"..."9").contains($0) }) else { return nil }
        self.value = digits.reduce(0) { $0 * 10 + UInt32($1.value - 0x30) }
    }

    init(asciiDigits bytes: [UInt8]) throws(WireError) {
        guard bytes.count == 6, bytes.allSatisfy({ (0x30...0x39).contains($0) }) else {
            throw WireError(.invalidField, "support code must be six ASCII digits, got \(bytes.count) bytes \(bytes)")
        }
        self.value = bytes.reduce(0) { $0 * 10 + UInt32($1 - 0x30) }
    }

    var asciiDigits: [UInt8] {
        var digits = [UInt8](repeating: 0x30, count: 6)
        var rest = self.value
        for index in stride(from: 5, through: 0, by: -1) {
            digits[index] = UInt8(0x30 + rest % 10)
            rest /= 10
        }
        return digits
    }

    /// The six digits, zero-padded.
    public var description: String { String(decoding: self.asciiDigits, as: UTF8.self) }

    /// A uniformly random code.
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> SupportCode {
        SupportCode(value: UInt32.random(in: 0..<1_000_000, using: &generator))!
    }
}

/// A 128-bit session identifier, shown as 32 lowercase hex digits.
public struct SessionID: Sendable, Hashable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses 32 hex digits (dashes allowed, as in a UUID).
    public init?(_ text: some StringProtocol) {
        let hex = String(text.filter { $0 != "-" })
        // UInt64(_:radix:) would also take a sign: insist on exactly 32 hex digits.
        guard hex.utf8.count == 32, hex.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x46).contains($0) || (0x61...0x66).contains($0) }),
            let high = UInt64(hex.prefix(16), radix: 16), let low = UInt64(hex.suffix(16), radix: 16)
        else { return nil }
        self.init(high: high, low: low)
    }

    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> SessionID {
        SessionID(high: generator.next(), low: generator.next())
    }

    public var description: String { hex16(self.high) + hex16(self.low) }
}

private func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

/// Why a session or connection ended, carried by ``Bye`` (PROTOCOL.md §6.2).
///
/// A struct rather than an enum so that a code from a newer peer still decodes;
/// ``name`` says `unknown_N` for those.
public struct ByeReason: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The sender ended the session on purpose (viewer closed, host stopped sharing).
    public static let normal = ByeReason(rawValue: 1)
    /// The other side of the session disconnected or failed.
    public static let peerLeft = ByeReason(rawValue: 2)
    /// The relay is shutting down.
    public static let relayShutdown = ByeReason(rawValue: 3)
    /// Nothing arrived for longer than the idle timeout.
    public static let idleTimeout = ByeReason(rawValue: 4)
    /// Hello and authentication did not finish within the deadline.
    public static let handshakeTimeout = ByeReason(rawValue: 5)
    /// The other side sent something the protocol does not allow.
    public static let protocolError = ByeReason(rawValue: 6)
    /// An administrator removed the host, engineer or company, or rotated its secret.
    public static let revoked = ByeReason(rawValue: 7)
    /// The relay closed its records after a restart (usage history only; never sent).
    public static let relayRestart = ByeReason(rawValue: 8)
    /// The customer refused the engineer at the host's consent prompt (PROTOCOL.md §5.2.7).
    public static let declined = ByeReason(rawValue: 9)

    public static let known: [ByeReason] = [
        .normal, .peerLeft, .relayShutdown, .idleTimeout, .handshakeTimeout, .protocolError, .revoked, .relayRestart, .declined,
    ]

    /// The snake_case name used in PROTOCOL.md, logs and the usage history.
    public var name: String {
        switch self.rawValue {
        case 1: "normal"
        case 2: "peer_left"
        case 3: "relay_shutdown"
        case 4: "idle_timeout"
        case 5: "handshake_timeout"
        case 6: "protocol_error"
        case 7: "revoked"
        case 8: "relay_restart"
        case 9: "declined"
        default: "unknown_\(self.rawValue)"
        }
    }

    public var description: String { self.name }
}

/// What went wrong, carried by ``ErrorMessage`` (PROTOCOL.md §6.1). The sender closes
/// the connection after an Error.
public struct ErrorCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The Hello's protocol version is not one the relay speaks.
    public static let unsupportedVersion = ErrorCode(rawValue: 1)
    /// A frame or message could not be decoded (see WireError kinds).
    public static let malformedMessage = ErrorCode(rawValue: 2)
    /// A frame's payload exceeded the receiver's limit.
    public static let frameTooLarge = ErrorCode(rawValue: 3)
    /// A message arrived in a state that does not allow it (e.g. TileUpdate before Paired).
    public static let unexpectedMessage = ErrorCode(rawValue: 4)
    /// The token, or the host id and secret, were not accepted.
    public static let authenticationFailed = ErrorCode(rawValue: 5)
    /// The support code is wrong, expired or already used (one answer for all three).
    public static let invalidCode = ErrorCode(rawValue: 6)
    /// No host with that id is reachable for this engineer (also for other companies' hosts).
    public static let noSuchHost = ErrorCode(rawValue: 7)
    /// The host already has a viewer.
    public static let hostBusy = ErrorCode(rawValue: 8)
    /// Too many failed attempts from this address or for this target; wait and retry.
    public static let rateLimited = ErrorCode(rawValue: 9)
    /// The relay is at its connection limit.
    public static let relayFull = ErrorCode(rawValue: 10)
    /// Hello or authentication took longer than the deadline.
    public static let timeout = ErrorCode(rawValue: 11)
    /// The relay failed; the message says what to report.
    public static let internalError = ErrorCode(rawValue: 12)

    public static let known: [ErrorCode] = [
        .unsupportedVersion, .malformedMessage, .frameTooLarge, .unexpectedMessage, .authenticationFailed,
        .invalidCode, .noSuchHost, .hostBusy, .rateLimited, .relayFull, .timeout, .internalError,
    ]

    /// The snake_case name used in PROTOCOL.md and logs.
    public var name: String {
        switch self.rawValue {
        case 1: "unsupported_version"
        case 2: "malformed_message"
        case 3: "frame_too_large"
        case 4: "unexpected_message"
        case 5: "authentication_failed"
        case 6: "invalid_code"
        case 7: "no_such_host"
        case 8: "host_busy"
        case 9: "rate_limited"
        case 10: "relay_full"
        case 11: "timeout"
        case 12: "internal_error"
        default: "unknown_\(self.rawValue)"
        }
    }

    public var description: String { self.name }
}
