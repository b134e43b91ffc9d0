import Foundation
import NIOSSL
import RelayWire
import Testing

@testable import RelayClient
@testable import RelayServer

/// What the relay and its agents share below the frames (RelayWire's
/// TransportConventions.swift): one HOST:PORT grammar, one fingerprint format, one TLS
/// policy. Before issue 11 each side had its own copy, and the copies disagreed.
@Suite struct TransportConventionsTests {
    // MARK: HOST:PORT

    @Test(
        arguments: [
            ("relay.example.com:7443", "relay.example.com", 7443),
            ("relay.example.com", "relay.example.com", nil),
            ("10.0.0.5:443", "10.0.0.5", 443),
            ("[2001:db8::1]:7443", "2001:db8::1", 7443),
            ("[::1]", "::1", nil),
            ("[fe80::1%eth0]:7443", "fe80::1%eth0", 7443),
            (":7443", "", 7443),
            ("relay:0", "relay", 0),
            ("relay:65535", "relay", 65535),
            ("릴레이.example:7443", "릴레이.example", 7443),
        ] as [(String, String, Int?)])
    func hostPortAccepts(text: String, host: String, port: Int?) throws {
        #expect(try HostPort(parsing: text) == HostPort(host: host, port: port))
    }

    @Test(arguments: [
        ("", "empty"),
        ("::1", "brackets"),
        ("2001:db8::1:7443", "brackets"),
        ("relay:7443:1", "brackets"),
        ("[::1", "does not close"),
        ("[::1]7443", "only :PORT"),
        ("[relay]:7443", "no IPv6 address"),
        ("[]:7443", "no IPv6 address"),
        ("relay:", "no valid port"),
        ("relay:65536", "no valid port"),
        ("relay:+80", "no valid port"),
        ("relay:-1", "no valid port"),
        ("relay:0x50", "no valid port"),
        ("relay:007443", "no valid port"),
        ("relay example:7443", "no spaces"),
        ("relay/x:7443", "no spaces"),
        ("user@relay:7443", "no spaces"),
    ])
    func hostPortRefusesAndSaysWhy(text: String, why: String) {
        let error = #expect(throws: HostPort.ParseError.self) { try HostPort(parsing: text) }
        #expect(error?.message.contains(why) == true, "\(text): \(error?.message ?? "")")
    }

    @Test func hostPortPrintsWhatItParses() throws {
        for text in ["relay.example.com:7443", "[2001:db8::1]:7443", "relay.example.com", "[::1]"] {
            #expect(try HostPort(parsing: text).description == text)
        }
    }

    /// `relay-agent --relay`: a host is required; the port defaults to 7443 and cannot be 0.
    /// RelayAddress had no tests before issue 11; `relay:7443:1` and `relay:+80` passed it.
    @Test func relayAddressFollowsTheSharedRules() throws {
        #expect(try RelayAddress(parsing: "relay.example.com") == RelayAddress(host: "relay.example.com", port: 7443))
        #expect(try RelayAddress(parsing: "relay.example.com:8443") == RelayAddress(host: "relay.example.com", port: 8443))
        #expect(try RelayAddress(parsing: "[2001:db8::1]") == RelayAddress(host: "2001:db8::1", port: 7443))
        #expect(try RelayAddress(parsing: "[2001:db8::1]:9000").description == "[2001:db8::1]:9000")
        for bad in [":7443", "relay:0", "relay:+80", "::1", "relay:7443:1", "relay :7443", "", "[relay]:7443"] {
            let error = #expect(throws: RelayClientError.self, "\(bad)") { try RelayAddress(parsing: bad) }
            #expect(error?.kind == .configuration)
            #expect(error?.message.contains("write e.g. relay.example.com:7443") == true, "\(error?.message ?? "")")
        }
    }

    /// `relay-server --listen`: the port is required (0 picks a free one); no host means
    /// every IPv4 interface (OPERATIONS.md "Configuration").
    @Test func listenAddressFollowsTheSharedRules() throws {
        #expect(try ListenAddress(parsing: ":7443") == ListenAddress(host: "0.0.0.0", port: 7443))
        #expect(try ListenAddress(parsing: "127.0.0.1:0") == ListenAddress(host: "127.0.0.1", port: 0))
        #expect(try ListenAddress(parsing: "[::]:7443") == ListenAddress(host: "::", port: 7443))
        #expect(ListenAddress(host: "::", port: 7443).description == "[::]:7443")
        for bad in ["relay.example.com", "[::1]", "::1:7443", "relay:+80", "relay:", "0.0.0.0 :7443"] {
            let error = #expect(throws: ConfigurationError.self, "\(bad)") { try ListenAddress(parsing: bad) }
            #expect(error?.kind == .invalidValue)
            #expect(error?.message.contains("write e.g. 0.0.0.0:7443, [::]:7443 or :7443") == true, "\(error?.message ?? "")")
        }
    }

    // MARK: Fingerprints

    @Test func fingerprintsAreWrittenOneWay() {
        let digest: [UInt8] = (0..<32).map { UInt8($0 * 8) }
        let hex = CertificateFingerprint.hex(digest)
        #expect(hex == "0008101820283038404850586068707880889098A0A8B0B8C0C8D0D8E0E8F0F8")
        #expect(
            CertificateFingerprint.display(sha256: digest) == "00:08:10:18:20:28:30:38:40:48:50:58:60:68:70:78:80:88:90:98:A0:A8:B0:B8:C0:C8:D0:D8:E0:E8:F0:F8")
        #expect(CertificateFingerprint.display(hex: hex) == CertificateFingerprint.display(sha256: digest))
        // What a person pastes: the printed form, lower case, spaces.
        #expect(CertificateFingerprint.normalized(CertificateFingerprint.display(sha256: digest)) == hex)
        #expect(CertificateFingerprint.normalized(hex.lowercased()) == hex)
        #expect(CertificateFingerprint.normalized("00 08 10 18" + String(hex.dropFirst(8))) == hex)
        #expect(CertificateFingerprint.normalized(String(hex.dropLast())) == nil)
        #expect(CertificateFingerprint.normalized(String(hex.dropLast()) + "G") == nil)
        // Full-width digits are "hex digits" to Character.isHexDigit; they are not a fingerprint.
        #expect(CertificateFingerprint.normalized(String(hex.dropLast()) + "\u{FF10}") == nil)
    }

    /// The fingerprint relay-server prints is the one the agent computes from the
    /// certificate it is shown, whichever side serialized it.
    @Test func theRelayAndTheAgentAgreeOnACertificatesFingerprint() throws {
        let issued = try CertificateFactory.selfSigned(commonName: "relay", dnsNames: ["relay.example.com"])
        let printed = try issued.fingerprint
        let tls = RelayTLS(certificateChain: [try issued.nioCertificate()], privateKey: try issued.nioPrivateKey(), fingerprint: printed, origin: "test")
        #expect(printed.count == 95)
        #expect(RelayTrust.fingerprint(of: tls.certificateChain[0]) == RelayTrust.normalizedFingerprint(printed))
        #expect(CertificateFingerprint.display(hex: RelayTrust.fingerprint(of: tls.certificateChain[0])) == printed)
    }

    // MARK: TLS policy

    @Test func theRelayAndTheAgentUseOneTLSPolicy() throws {
        let issued = try CertificateFactory.selfSigned(commonName: "relay", dnsNames: ["relay.example.com"])
        let tls = RelayTLS(
            certificateChain: [try issued.nioCertificate()], privateKey: try issued.nioPrivateKey(), fingerprint: try issued.fingerprint, origin: "test")
        let server = tls.serverConfiguration()
        let client = try RelayTrust.fingerprint(try issued.fingerprint).clientConfiguration()
        #expect(server.minimumTLSVersion == .tlsv12)
        #expect(client.minimumTLSVersion == server.minimumTLSVersion)
        #expect(server.cipherSuites == RelayTLSPolicy.tls12CipherSuites)
        #expect(client.cipherSuites == server.cipherSuites)
        #expect(server.applicationProtocols == [RelayTLSPolicy.alpnToken])
        #expect(client.applicationProtocols == server.applicationProtocols)
        // ECDHE and AEAD only (PROTOCOL.md §1).
        for suite in RelayTLSPolicy.tls12CipherSuites.split(separator: ":") {
            #expect(suite.hasPrefix("ECDHE-") && (suite.contains("GCM") || suite.contains("CHACHA20-POLY1305")), "\(suite)")
        }
        // The admin port keeps the policy with its own ALPN.
        let admin = tls.serverConfiguration(applicationProtocols: ["http/1.1"])
        #expect(admin.cipherSuites == server.cipherSuites && admin.minimumTLSVersion == server.minimumTLSVersion)
    }
}
