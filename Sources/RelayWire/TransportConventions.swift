// What the relay and its agents must agree on below the frames: the TLS policy of
// PROTOCOL.md §1, how a certificate fingerprint is written, and how an address is written.
// Both RelayServer and RelayClient read them from here, the one module both depend on;
// RelayWire stays free of NIOSSL and Crypto, so this file holds only values and text rules,
// and each side applies them to its own TLS configuration.

/// The TLS settings both ends use (PROTOCOL.md §1 "TCP + TLS" and "ALPN").
public enum RelayTLSPolicy {
    /// A TLS protocol version, for ``minimumVersion``.
    public enum Version: Sendable, Hashable {
        case tls12
        case tls13
    }

    /// TLS 1.3 is preferred; TLS 1.2 is the minimum.
    public static let minimumVersion = Version.tls12

    /// The TLS 1.2 cipher suites, in OpenSSL's colon-separated notation: ECDHE key exchange
    /// with AEAD ciphers only. (Every TLS 1.3 suite is AEAD, so TLS 1.3 needs no list.)
    public static let tls12CipherSuites = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    /// The one ALPN token both sides offer and the relay selects.
    public static let alpnToken = RelayProtocol.alpnToken
}

/// A certificate's SHA-256 fingerprint as people read and type it: what `relay-server`
/// prints at start, and what `relay-agent --fingerprint` pins.
public enum CertificateFingerprint {
    /// `AB:CD:…`: the digest's bytes as uppercase hex pairs separated by colons.
    /// (Hashing is the caller's: RelayWire does not link a crypto library.)
    public static func display(sha256 digest: some Sequence<UInt8>) -> String {
        Self.display(hex: Self.hex(digest))
    }

    /// Uppercase hex pairs of `hex` (64 digits, as ``normalized(_:)`` returns) separated by colons.
    public static func display(hex: String) -> String {
        var out = ""
        out.reserveCapacity(hex.count * 3 / 2)
        for (index, character) in hex.enumerated() {
            if index > 0 && index % 2 == 0 { out.append(":") }
            out.append(character)
        }
        return out
    }

    /// The digest's bytes as 64 uppercase hex digits, no separators: how fingerprints compare.
    public static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        for byte in digest {
            bytes.append(digits[Int(byte >> 4)])
            bytes.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A fingerprint as a person may type it: 64 hex digits, colons and spaces allowed,
    /// any case. Returns the 64 uppercase digits, or nil if it is not a SHA-256 fingerprint.
    public static func normalized(_ text: String) -> String? {
        let hex = text.filter { $0 != ":" && $0 != " " }.uppercased()
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x46).contains($0) }) else { return nil }
        return hex
    }
}

/// A host and port as an operator writes them: `HOST:PORT`, `[IPv6]:PORT`, `HOST`,
/// `[IPv6]` or `:PORT`. One set of rules for the relay's `--listen` and the agents'
/// `--relay`; each decides what a missing part means (``ListenAddress``: all interfaces;
/// ``RelayAddress``: port 7443).
///
/// The rules: an IPv6 address goes in brackets (`[::1]:7443`), since its colons would
/// make the port ambiguous; a host has no spaces, brackets, slashes or control characters;
/// a port is 1 to 5 ASCII digits, 0…65535.
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// The host without brackets; empty when the text gave none (`:7443`).
    public var host: String
    /// Nil when the text gave none (`relay.example.com`).
    public var port: Int?

    public init(host: String, port: Int?) {
        self.host = host
        self.port = port
    }

    /// Why a text is not a host and port: a sentence that quotes it, for the caller to
    /// complete with an example that fits its flag.
    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { self.message }
    }

    public init(parsing text: String) throws(ParseError) {
        let hostText: Substring
        let portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw ParseError(message: "\"\(text)\" opens a [ for an IPv6 address but does not close it")
            }
            hostText = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if rest.isEmpty {
                portText = nil
            } else if rest.hasPrefix(":") {
                portText = rest.dropFirst()
            } else {
                throw ParseError(message: "\"\(text)\" has \"\(rest)\" after the IPv6 address, where only :PORT may follow")
            }
            guard hostText.contains(":"), hostText.unicodeScalars.allSatisfy(Self.isIPv6LiteralScalar) else {
                throw ParseError(message: "\"\(text)\" has no IPv6 address in its brackets")
            }
        } else {
            let colons = text.filter { $0 == ":" }.count
            guard colons <= 1 else {
                throw ParseError(message: "\"\(text)\" is not HOST:PORT; an IPv6 address goes in brackets, as in [::1]:7443")
            }
            if let colon = text.firstIndex(of: ":") {
                hostText = text[..<colon]
                portText = text[text.index(after: colon)...]
            } else {
                hostText = text[...]
                portText = nil
            }
            guard hostText.unicodeScalars.allSatisfy(Self.isHostScalar) else {
                throw ParseError(message: "\"\(text)\" is not HOST:PORT; a host name has no spaces, brackets, slashes or control characters")
            }
            guard !hostText.isEmpty || portText != nil else {
                throw ParseError(message: "the address is empty; give HOST:PORT")
            }
        }
        self.host = String(hostText)
        if let portText {
            guard (1...5).contains(portText.utf8.count), portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let port = Int(portText), port <= 65535
            else {
                throw ParseError(message: "\"\(text)\" has no valid port (0–65535)")
            }
            self.port = port
        } else {
            self.port = nil
        }
    }

    /// `host:port`, `[IPv6]:port`, or the host alone when there is no port.
    public var description: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return self.port.map { "\(host):\($0)" } ?? host
    }

    private static func isHostScalar(_ scalar: Unicode.Scalar) -> Bool {
        !(scalar.properties.isWhitespace || scalar.properties.generalCategory == .control || "[]/\\@".unicodeScalars.contains(scalar))
    }

    /// Hex digits, colons, dots (an embedded IPv4 address), and a `%zone` of ASCII letters and digits.
    private static func isIPv6LiteralScalar(_ scalar: Unicode.Scalar) -> Bool {
        guard scalar.isASCII else { return false }
        return ("0"..."9").contains(scalar) || ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ":.%-_".unicodeScalars.contains(scalar)
    }
}
