import NIOCore
import RelayTestSupport
import Testing

@testable import RelayServer

// SourceKey: what per-source penalties and caps are charged to.
@Suite struct SourceKeyTests {
    private static func key(_ text: String) -> SourceKey? { SourceKey(ipAddress: text) }

    @Test func anIPv4AddressIsItsOwnKey() {
        #expect(Self.key("192.0.2.7")?.description == "192.0.2.7")
        #expect(Self.key("192.0.2.7") == Self.key("192.0.2.7"))
        #expect(Self.key("192.0.2.7") != Self.key("192.0.2.8"))
        #expect(Self.key("0.0.0.0")?.description == "0.0.0.0")
        #expect(Self.key("255.255.255.255")?.description == "255.255.255.255")
        #expect(Self.key("192.0.2.7")?.isIPv6Prefix == false)
    }

    @Test func anIPv6AddressIsKeyedByItsSlash64() {
        let a = Self.key("2001:db8:1:2:aaaa:bbbb:cccc:dddd")
        let b = Self.key("2001:db8:1:2::1")
        let c = Self.key("2001:0db8:0001:0002:ffff:ffff:ffff:fffe")
        #expect(a != nil && a == b && b == c)
        #expect(a?.description == "2001:db8:1:2::/64")
        #expect(a?.isIPv6Prefix == true)
        // The next /64, and one that differs only in the first group, are other sources.
        #expect(Self.key("2001:db8:1:3::1") != a)
        #expect(Self.key("2002:db8:1:2::1") != a)
        #expect(Self.key("::1")?.description == "0:0:0:0::/64")
        #expect(Self.key("fe80::1") == Self.key("fe80::2"))
    }

    @Test func anIPv4MappedIPv6AddressIsTheIPv4Address() {
        #expect(Self.key("::ffff:192.0.2.7") == Self.key("192.0.2.7"))
        #expect(Self.key("::ffff:c000:0207") == Self.key("192.0.2.7"))
        #expect(Self.key("::ffff:192.0.2.7")?.description == "192.0.2.7")
        // Two IPv4 peers behind one dual-stack socket are still two sources (the /64 of
        // ::ffff:0:0/96 would otherwise lump every IPv4 peer together).
        #expect(Self.key("::ffff:192.0.2.7") != Self.key("::ffff:192.0.2.8"))
        // Only ::ffff:0:0/96 is mapped: ::192.0.2.7 (deprecated "compatible") and
        // 64:ff9b::192.0.2.7 (NAT64) are IPv6 sources.
        #expect(Self.key("::192.0.2.7")?.isIPv6Prefix == true)
        #expect(Self.key("64:ff9b::192.0.2.7")?.isIPv6Prefix == true)
    }

    @Test func bracketsAndZonesAreAccepted() {
        #expect(Self.key("[2001:db8::1]") == Self.key("2001:db8::1"))
        #expect(Self.key("fe80::1%eth0") == Self.key("fe80::1"))
        #expect(Self.key("[fe80::1%eth0]") == Self.key("fe80::1"))
    }

    @Test(arguments: ["", "unknown", "192.0.2", "192.0.2.256", "192.0.2.7:7443", "2001:db8::1::2", "[192.0.2.7", "host.example", " 192.0.2.7", "%eth0"])
    func textThatIsNotAnIPAddressHasNoKey(_ text: String) {
        #expect(Self.key(text) == nil)
        #expect(SourceKey(ipAddressOrUnknown: text) == .unknown)
    }

    @Test func aSocketAddressGivesTheSameKeyAsItsText() throws {
        for text in ["192.0.2.7", "2001:db8:1:2::99", "::ffff:198.51.100.4", "::1"] {
            let address = try SocketAddress(ipAddress: text, port: 7443)
            #expect(SourceKey(address) == Self.key(text), "\(text)")
            #expect(SourceKey(ipAddressOrUnknown: address.ipAddress) == Self.key(text), "\(text)")
        }
        #expect(SourceKey(nil) == .unknown)
        #expect(SourceKey(try SocketAddress(unixDomainSocketPath: "/tmp/relay.sock")) == .unknown)
        #expect(SourceKey(ipAddressOrUnknown: nil) == .unknown)
        #expect(SourceKey.unknown.description == "unknown")
    }

    /// Property: every IPv6 address of one /64, whatever its last 64 bits, has one key;
    /// and the key's text parses back to that key.
    @Test func everyAddressOfASlash64HasTheKeyOfThatSlash64() {
        var generator = SeededRandom(seed: 64)
        for _ in 0..<200 {
            let prefix = (0..<4).map { _ in String(UInt16.random(in: 0...UInt16.max, using: &generator), radix: 16) }
            // Skip ::ffff:0:0/96-looking prefixes (the first 64 bits all zero).
            guard prefix.contains(where: { $0 != "0" }) else { continue }
            let expected = Self.key(prefix.joined(separator: ":") + "::")
            for _ in 0..<5 {
                let suffix = (0..<4).map { _ in String(UInt16.random(in: 0...UInt16.max, using: &generator), radix: 16) }
                #expect(Self.key((prefix + suffix).joined(separator: ":")) == expected)
            }
            let text = expected?.description ?? ""
            #expect(text.hasSuffix("::/64"))
            #expect(Self.key(String(text.dropLast(3))) == expected)
        }
    }
}
