import Foundation
import Logging
import NIOCore
import NIOPosix
import RelayClient
import RelayStore
import RelayTestSupport
import RelayWire
import ServiceLifecycle
import Testing

@testable import RelayServer

/// Issue 10 item 14: the TLS alert `no_application_protocol`, the self-signed certificate
/// (90 days, renewed, key identifiers, no machine name) and PEM files haproxy accepts.
@Suite struct CertificateTests {
    // MARK: Helpers

    /// Runs `command` with `sh -c`; its exit status, standard output and standard error.
    @discardableResult
    static func shell(_ command: String) async throws -> (status: Int32, output: String, errors: String) {
        // A process blocks while it runs: off the 2-thread cooperative pool, or other tests'
        // TLS handshakes (10 s deadlines) stall meanwhile.
        try await NIOThreadPool.singleton.runIfActive { try Self.runShell(command) }
    }

    private static func runShell(_ command: String) throws -> (status: Int32, output: String, errors: String) {
        let ran = try SpawnedProgram.run(path: "/bin/sh", arguments: ["-c", command], environment: ProcessInfo.processInfo.environment)
        return (ran.status, String(decoding: ran.output, as: UTF8.self), String(decoding: ran.errors, as: UTF8.self))
    }

    /// The SHA-256 fingerprint of the certificate a TLS port presents, as `openssl` sees it.
    static func presentedFingerprint(port: Int, alpn: String) async throws -> String {
        let result = try await Self.shell(
            "openssl s_client -connect 127.0.0.1:\(port) -alpn \(alpn) </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        )
        guard let value = result.output.split(separator: "=").last else { throw TestFailure("no certificate from port \(port): \(result)") }
        return value.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func withFolder<T>(_ body: (String) async throws -> T) async throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("certificates-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await body(path)
    }

    static let day = 86_400.0

    // MARK: (a) ALPN: the alert, not a silent close

    /// A ClientHello (RFC 8446 §4.1.2) in one handshake record, with `alpn` if given.
    static func clientHello(alpn: [String]?, extensions: Bool = true, declaredLength: Int? = nil) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(UInt16(0x0303))
        body.writeRepeatingByte(7, count: 32)  // random
        body.writeInteger(UInt8(32))
        body.writeRepeatingByte(9, count: 32)  // legacy session id
        body.writeInteger(UInt16(4))
        body.writeInteger(UInt16(0x1301))
        body.writeInteger(UInt16(0x1302))
        body.writeInteger(UInt8(1))
        body.writeInteger(UInt8(0))
        if extensions {
            var list = ByteBuffer()
            // server_name "localhost"
            list.writeInteger(UInt16(0))
            list.writeInteger(UInt16(14))
            list.writeInteger(UInt16(12))
            list.writeInteger(UInt8(0))
            list.writeInteger(UInt16(9))
            list.writeString("localhost")
            if let alpn {
                var names = ByteBuffer()
                for name in alpn {
                    names.writeInteger(UInt8(name.utf8.count))
                    names.writeString(name)
                }
                list.writeInteger(UInt16(16))
                list.writeInteger(UInt16(names.readableBytes + 2))
                list.writeInteger(UInt16(names.readableBytes))
                list.writeImmutableBuffer(names)
            }
            // supported_versions: TLS 1.3
            list.writeInteger(UInt16(43))
            list.writeInteger(UInt16(3))
            list.writeInteger(UInt8(2))
            list.writeInteger(UInt16(0x0304))
            body.writeInteger(UInt16(list.readableBytes))
            body.writeImmutableBuffer(list)
        }
        var record = ByteBuffer()
        record.writeInteger(UInt8(22))
        record.writeInteger(UInt16(0x0301))
        record.writeInteger(UInt16(body.readableBytes + 4))
        record.writeInteger(UInt8(1))
        let length = declaredLength ?? body.readableBytes
        record.writeInteger(UInt8(length >> 16))
        record.writeInteger(UInt16(length & 0xFFFF))
        record.writeImmutableBuffer(body)
        return record
    }

    @Test func theOfferedProtocolsAreReadFromTheClientHello() {
        #expect(ClientHelloALPN.offer(in: Self.clientHello(alpn: ["h2", "supportrelay/1"])) == .protocols(["h2", "supportrelay/1"]))
        #expect(ClientHelloALPN.offer(in: Self.clientHello(alpn: ["foo"])) == .protocols(["foo"]))
        #expect(ClientHelloALPN.offer(in: Self.clientHello(alpn: nil)) == ClientHelloALPN.Offer.none)
        #expect(ClientHelloALPN.offer(in: Self.clientHello(alpn: nil, extensions: false)) == ClientHelloALPN.Offer.none)
        // Byte by byte: incomplete until the record is whole.
        let whole = Self.clientHello(alpn: ["supportrelay/1"])
        for length in [0, 1, 4, 5, 40, whole.readableBytes - 1] {
            #expect(ClientHelloALPN.offer(in: whole.getSlice(at: 0, length: length)!) == .incomplete, "\(length)")
        }
    }

    @Test func whatTheParserDoesNotReadWholeIsLeftToTheTLSLibrary() {
        // Not TLS, a ClientHello longer than its record (split over records), an empty ALPN list.
        #expect(ClientHelloALPN.offer(in: ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n")) == .unreadable)
        let split = Self.clientHello(alpn: ["supportrelay/1"], declaredLength: 5000)
        #expect(ClientHelloALPN.offer(in: split) == .unreadable)
        #expect(ClientHelloALPN.offer(in: Self.clientHello(alpn: [])) == .unreadable)
        var huge = ByteBuffer()
        huge.writeBytes([22, 3, 1, 0x40, 0x01])  // 16385 bytes: more than a record may carry
        #expect(ClientHelloALPN.offer(in: huge) == .unreadable)
    }

    /// The parser reads bytes from anyone before TLS: mangled ClientHellos never trap, and
    /// every answer is one of the four (a quick in-process check; fuzz/ can run it longer).
    @Test func mangledClientHellosNeverTrap() {
        var generator = SystemRandomNumberGenerator()
        let valid = Array(Self.clientHello(alpn: ["h2", "supportrelay/1"]).readableBytesView)
        var answers: [String: Int] = [:]
        for round in 0..<20_000 {
            var bytes = valid
            for _ in 0..<(1 + round % 4) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch round % 3 {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.removeSubrange(index...)
                default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: index)
                }
                if bytes.isEmpty { break }
            }
            let answer: String
            switch ClientHelloALPN.offer(in: ByteBuffer(bytes: bytes)) {
            case .incomplete: answer = "incomplete"
            case .none: answer = "none"
            case .protocols: answer = "protocols"
            case .unreadable: answer = "unreadable"
            }
            answers[answer, default: 0] += 1
        }
        #expect(answers["unreadable", default: 0] > 0)
        #expect(answers["protocols", default: 0] > 0)
    }

    /// Before the fix the handshake completed and the relay closed without a word.
    @Test(.timeLimit(.minutes(1))) func aClientWithoutTheProtocolGetsTheAlert() async throws {
        try await TestRelay.with { relay in
            for option in ["-alpn foo", "-alpn h2", ""] {
                let result = try await Self.shell("openssl s_client -connect 127.0.0.1:\(relay.port) -servername localhost \(option) </dev/null")
                #expect(result.status != 0, "\(option)")
                #expect(result.errors.contains("no application protocol") && result.errors.contains("alert number 120"), "\(option): \(result.errors)")
            }
            let good = try await Self.shell("openssl s_client -connect 127.0.0.1:\(relay.port) -servername localhost -alpn supportrelay/1 </dev/null")
            #expect(good.output.contains("ALPN protocol: supportrelay/1"), "\(good)")

            // A NIOSSL client offering another protocol fails its handshake with the alert.
            let agent = try await RawAgent.connect(to: relay, alpn: ["h2"])
            do {
                _ = try await agent.readFrame()
                Issue.record("the handshake succeeded")
            } catch {
                #expect("\(error)".contains("NO_APPLICATION_PROTOCOL"), "\(error)")
            }
            // Agents with the token are served as before.
            try await RelayConnection.withConnection(to: relay.address, trust: relay.trust) { viewer in
                _ = try await viewer.hello(role: .viewer)
            }
        }
    }

    // MARK: (b) The self-signed certificate

    @Test func renewalIsDueThirtyDaysBeforeTheEnd() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func decide(
            daysLeft: Double, validFor: Double = 90, names: [String] = ["localhost"], wanted: [String] = ["localhost"], asked: Bool = false
        )
            -> DevelopmentCertificate.Decision
        {
            let end = now.addingTimeInterval(daysLeft * Self.day)
            return DevelopmentCertificate.decision(
                notBefore: end.addingTimeInterval(-validFor * Self.day), notAfter: end, names: names, wanted: wanted, namesAsked: asked, now: now
            )
        }
        #expect(decide(daysLeft: 31) == .keep)
        #expect(decide(daysLeft: 89) == .keep)
        guard case .renew = decide(daysLeft: 29) else {
            Issue.record("29 days left: not renewed")
            return
        }
        guard case .renew = decide(daysLeft: -1) else {
            Issue.record("expired: not renewed")
            return
        }
        // Names asked for that the certificate lacks: renewed now. The old default (the
        // machine's name): kept, with a warning, until the renewal.
        guard case .renew = decide(daysLeft: 80, wanted: ["relay.example.com"], asked: true) else {
            Issue.record("names asked: not renewed")
            return
        }
        guard case .keepWithWarning(let names) = decide(daysLeft: 80, names: ["localhost", "relay1"]) else {
            Issue.record("no warning")
            return
        }
        #expect(names.contains("localhost, relay1"))
        // An older relay's 825-day certificate: kept, with a warning.
        guard case .keepWithWarning(let long) = decide(daysLeft: 700, validFor: 825) else {
            Issue.record("no warning")
            return
        }
        #expect(long.contains("825 days"))
    }

    @Test func aNewCertificateIsFor90DaysWithKeyIdentifiersAndNoMachineName() async throws {
        try await Self.withFolder { data in
            let development = DevelopmentCertificate(dataDirectory: data)
            let now = Date()
            let (tls, outcome, warning) = try development.loadOrRenew(now: now)
            #expect(outcome == .created)
            #expect(warning == nil)
            // Read by openssl, not by the library that wrote it.
            let path = development.certificatePath
            let text = try await Self.shell("openssl x509 -in '\(path)' -noout -text").output
            #expect(text.contains("X509v3 Subject Key Identifier"))
            #expect(text.contains("X509v3 Authority Key Identifier"))
            let subjectKeyID = try await Self.shell("openssl x509 -in '\(path)' -noout -ext subjectKeyIdentifier").output.split(separator: "\n").last
            let authorityKeyID = try await Self.shell("openssl x509 -in '\(path)' -noout -ext authorityKeyIdentifier").output.split(separator: "\n").last
            #expect(subjectKeyID != nil && authorityKeyID?.contains(subjectKeyID!.trimmingCharacters(in: .whitespaces)) == true)  // self-signed
            let names = try await Self.shell("openssl x509 -in '\(path)' -noout -ext subjectAltName").output
            #expect(names.contains("DNS:localhost"))
            #expect(names.components(separatedBy: "DNS:").count == 2, "\(names)")  // localhost only, not the machine's name
            #expect(try await Self.shell("openssl x509 -in '\(path)' -noout -checkend \(89 * 86_400)").status == 0)
            #expect(try await Self.shell("openssl x509 -in '\(path)' -noout -checkend \(91 * 86_400)").status != 0)
            #expect(tls.development == development)

            // Asked-for names replace the default.
            let named = DevelopmentCertificate(dataDirectory: data, names: ["relay.example.com", "relay"])
            guard case .renewed = try named.loadOrRenew(now: now).outcome else {
                Issue.record("not renewed for the names asked")
                return
            }
            let renamed = try await Self.shell("openssl x509 -in '\(named.certificatePath)' -noout -ext subjectAltName").output
            #expect(renamed.contains("DNS:relay.example.com") && renamed.contains("DNS:relay") && !renamed.contains("localhost"), "\(renamed)")
        }
    }

    @Test func aDueCertificateIsRenewedWithTheSameKeyAndANewFingerprint() async throws {
        try await Self.withFolder { data in
            let development = DevelopmentCertificate(dataDirectory: data)
            let start = Date()
            let (first, _, _) = try development.loadOrRenew(now: start)
            let firstKey = try String(contentsOfFile: development.keyPath, encoding: .utf8)
            // 59 days later: 31 left, kept.
            #expect(try development.loadOrRenew(now: start.addingTimeInterval(59 * Self.day)).outcome == .loaded)
            #expect(try development.renewIfDue(now: start.addingTimeInterval(59 * Self.day)) == nil)
            // 61 days later: renewed.
            let (second, outcome, _) = try development.loadOrRenew(now: start.addingTimeInterval(61 * Self.day))
            guard case .renewed(let previous, let reason) = outcome else {
                Issue.record("not renewed: \(outcome)")
                return
            }
            #expect(previous == first.fingerprint)
            #expect(reason.contains("less than 30 days"))
            #expect(second.fingerprint != first.fingerprint)
            #expect(try String(contentsOfFile: development.keyPath, encoding: .utf8) == firstKey)
            for path in [development.keyPath, development.certificatePath] {
                #expect(try FileModes.mode(path) == 0o600)
            }
        }
    }

    /// The running relay renews its certificate and presents the new one on both ports at
    /// once, without a restart.
    @Test(.timeLimit(.minutes(1))) func theRunningRelayRenewsAndServesTheNewCertificate() async throws {
        try await Self.withFolder { data in
            let node = try RelayNodeServiceTests.node(data: data) { $0.nodeName = "renewal-test" }
            let original = node.certificate.fingerprint  // before the renewal below
            let services = ServiceGroup(configuration: .init(services: [.init(service: node)], logger: RelayNodeServiceTests.logger))
            let running = Task { try await services.run() }
            defer { running.cancel() }
            let admin = try #require(await node.adminListening()?.port)
            let relayPort = try #require(node.relayAddress.port)
            #expect(try await Self.presentedFingerprint(port: relayPort, alpn: "supportrelay/1") == original)

            #expect(try node.renewCertificateIfDue(now: Date()) == false)
            #expect(try node.renewCertificateIfDue(now: Date().addingTimeInterval(70 * Self.day)) == true)
            let renewed = node.certificate.fingerprint
            #expect(renewed != original)
            #expect(try await Self.presentedFingerprint(port: relayPort, alpn: "supportrelay/1") == renewed)
            #expect(try await Self.presentedFingerprint(port: admin, alpn: "http/1.1") == renewed)
            // Agents pinning the new fingerprint connect; the old one is refused.
            let address = RelayAddress(host: "127.0.0.1", port: relayPort)
            try await RelayConnection.withConnection(to: address, trust: .fingerprint(renewed)) { agent in
                _ = try await agent.hello(role: .viewer)
            }
            let refused = await relayError {
                // A handshake failure surfaces on the first read (NOTES.md "TLS").
                try await RelayConnection.withConnection(to: address, trust: .fingerprint(original)) { _ = try await $0.hello(role: .viewer) }
            }
            #expect(refused != nil)

            await services.triggerGracefulShutdown()
            _ = try? await running.value
        }
    }

    // MARK: (c) PEM files end with a newline

    /// Before the fix the files ended without a newline, and `cat cert key > bundle.pem`
    /// glued the certificate's END line to the key's BEGIN line: haproxy refused it. (The
    /// key is generated here, at test time; the test names no key material itself.)
    @Test func certificateAndKeyCanBeConcatenatedIntoABundle() async throws {
        try await Self.withFolder { data in
            let development = DevelopmentCertificate(dataDirectory: data)
            _ = try development.loadOrRenew()
            for path in [development.certificatePath, development.keyPath] {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                #expect(bytes.last == 0x0A, "\(path)")
                #expect(!bytes.dropLast().hasSuffix([0x0A]), "\(path)")  // exactly one
            }
            let bundle = data + "/bundle.pem"
            try await Self.shell("cat '\(development.certificatePath)' '\(development.keyPath)' > '\(bundle)'")
            let text = try String(contentsOfFile: bundle, encoding: .utf8)
            // The key file's own first line, read from the file just generated.
            let keyText = try String(contentsOfFile: development.keyPath, encoding: .utf8)
            let keyHeader = try #require(keyText.split(separator: "\n").first.map(String.init))
            #expect(keyHeader.hasPrefix("-----BEGIN ") && keyHeader.hasSuffix("-----"))
            #expect(text.contains("-----END CERTIFICATE-----\n" + keyHeader + "\n"))

            let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].first { FileManager.default.isExecutableFile(atPath: $0) }
            guard let haproxy else { return }  // the bytes are checked above
            let config = data + "/haproxy.cfg"
            try """
            defaults
              mode tcp
              timeout connect 1s
              timeout client 1s
              timeout server 1s
            frontend relay
              bind 127.0.0.1:65000 ssl crt \(bundle)
              default_backend nowhere
            backend nowhere
              server none 127.0.0.1:1

            """.write(toFile: config, atomically: true, encoding: .utf8)
            let check = try await Self.shell("\(haproxy) -c -f '\(config)'")
            #expect(check.status == 0, "\(check.output)\(check.errors)")
        }
    }
}

extension Data {
    fileprivate func hasSuffix(_ bytes: [UInt8]) -> Bool { self.count >= bytes.count && Array(self.suffix(bytes.count)) == bytes }
}
