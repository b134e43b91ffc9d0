import NIOCore

/// Who a connection or a failed attempt is charged to: an IPv4 address, or the /64 an
/// IPv6 address belongs to (OPERATIONS.md "Abuse resistance").
///
/// A single IPv6 customer line is routinely given a whole /64 (often a /56 or /48), so
/// one attacker can pick a fresh IPv6 address for every attempt; keying by the full
/// address would make per-source penalties and caps worthless there. An IPv4-mapped IPv6
/// address (`::ffff:192.0.2.7`, what a dual-stack socket reports for an IPv4 peer) is
/// the IPv4 address it carries, so the same peer gets the same key on either listener.
///
/// Compact and hashable: the relay keeps tens of thousands of these in its tables.
struct SourceKey: Hashable, Sendable, CustomStringConvertible {
    private enum Storage: Hashable, Sendable {
        /// The IPv4 address, most significant byte first.
        case v4(UInt32)
        /// The first 64 bits of the IPv6 address.
        case v6Prefix(UInt64)
        /// No IP address (a Unix socket, a test channel): one shared key for all of them.
        case unknown
    }

    private let storage: Storage

    private init(_ storage: Storage) {
        self.storage = storage
    }

    /// The key of a connection without an IP address.
    static let unknown = SourceKey(.unknown)

    /// The key of a peer's socket address; ``unknown`` when it has no IP address.
    init(_ address: SocketAddress?) {
        switch address {
        case .v4(let v4)?:
            var raw = v4.address.sin_addr
            self = withUnsafeBytes(of: &raw) { Self(ipv4Bytes: $0) }
        case .v6(let v6)?:
            var raw = v6.address.sin6_addr
            self = withUnsafeBytes(of: &raw) { Self(ipv6Bytes: $0) }
        case .unixDomainSocket?, nil:
            self = .unknown
        }
    }

    /// The key of an IP address written as text: `192.0.2.7`, `2001:db8::1`,
    /// `[2001:db8::1]`, `fe80::1%eth0` (the zone is ignored) or `::ffff:192.0.2.7`.
    /// Returns nil when the text is not an IP address.
    init?(ipAddress text: some StringProtocol) {
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") {
            text = text.dropFirst().dropLast()
        }
        if let percent = text.firstIndex(of: "%") {
            text = text[..<percent]
        }
        // NIO parses with inet_pton: strict dotted quads and RFC 4291 IPv6 text only.
        guard !text.isEmpty, let address = try? SocketAddress(ipAddress: String(text), port: 0) else { return nil }
        self.init(address)
    }

    /// The key of a peer's address text as ``SocketAddress/ipAddress`` gives it, or
    /// ``unknown`` when there is none or it does not parse.
    init(ipAddressOrUnknown text: String?) {
        self = text.flatMap { Self(ipAddress: $0) } ?? .unknown
    }

    private init<Bytes: Collection<UInt8>>(ipv4Bytes bytes: Bytes) {
        self.init(.v4(bytes.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }))
    }

    private init(ipv6Bytes raw: UnsafeRawBufferPointer) {
        let bytes = Array(raw.prefix(16))
        // ::ffff:a.b.c.d (RFC 4291 §2.5.5.2) is an IPv4 peer on a dual-stack socket.
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            self.init(ipv4Bytes: bytes[12..<16])
        } else {
            self.init(.v6Prefix(bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }))
        }
    }

    /// True for an IPv6 /64 key.
    var isIPv6Prefix: Bool {
        if case .v6Prefix = self.storage { return true }
        return false
    }

    /// `192.0.2.7`, `2001:db8:0:1::/64` (the four leading groups, each without leading
    /// zeros), or `unknown`: for logs and the access log.
    var description: String {
        switch self.storage {
        case .v4(let value):
            return [24, 16, 8, 0].map { String((value >> $0) & 0xFF) }.joined(separator: ".")
        case .v6Prefix(let value):
            return [48, 32, 16, 0].map { String((value >> $0) & 0xFFFF, radix: 16) }.joined(separator: ":") + "::/64"
        case .unknown:
            return "unknown"
        }
    }
}
