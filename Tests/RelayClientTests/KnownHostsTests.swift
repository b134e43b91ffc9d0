import Crypto
import Foundation
import RelayClient
import RelayTestSupport
import RelayWire
import Testing

/// The viewer's pins of enrolled hosts' keys (docs/SECURITY.md §6.1):
/// first use, pinning, a changed key, foreign lines, forgetting, concurrency.
@Suite struct KnownHostsTests {
    static let relay = "relay.example.com:7443"

    /// What several threads report: problems from a ``KnownHosts``, errors.
    final class Collected<Element>: @unchecked Sendable {
        private let lock = NSLock()
        private var elements: [Element] = []
        func add(_ element: Element) { self.lock.withLock { self.elements.append(element) } }
        var all: [Element] { self.lock.withLock { self.elements } }
    }

    typealias Reports = Collected<KnownHosts.Problem>

    static func knownHosts(_ folder: TemporaryFolder, reports: Reports = Reports()) -> KnownHosts {
        KnownHosts(path: folder.file("supportrelay/known_hosts"), report: { reports.add($0) })
    }

    static func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    @Test("first use is unknown; after pinning, the key is known, for any spelling of the relay; the file is 0600 in a 0700 folder")
    func firstUseThenKnown() throws {
        let folder = try TemporaryFolder()
        let knownHosts = Self.knownHosts(folder)
        let key = Curve25519.Signing.PrivateKey().publicKey
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: key) == .unknown)
        #expect(!FileManager.default.fileExists(atPath: knownHosts.path), "a check writes nothing")
        #expect(try knownHosts.pin(relay: Self.relay, hostID: "ho_1", key: key))
        #expect(try FileModes.mode(knownHosts.path) == 0o600)
        #expect(try FileModes.mode(folder.file("supportrelay")) == 0o700)
        #expect(try String(contentsOfFile: knownHosts.path, encoding: .utf8) == "relay.example.com:7443 ho_1 ed25519 \(KeyFingerprint.base64(key))\n")
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: key) == .known)
        #expect(try knownHosts.check(relay: "RELAY.example.com", hostID: "ho_1", key: key) == .known)
        // Another host id, another relay, another port: first use again.
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_2", key: key) == .unknown)
        #expect(try knownHosts.check(relay: "other.example.com:7443", hostID: "ho_1", key: key) == .unknown)
        #expect(try knownHosts.check(relay: "relay.example.com:8443", hostID: "ho_1", key: key) == .unknown)
        #expect(try knownHosts.check(relay: Self.relay, hostID: "HO_1", key: key) == .unknown)
        // Pinning the same key again changes nothing.
        let before = try Self.bytes(knownHosts.path)
        #expect(try !knownHosts.pin(relay: "relay.example.com", hostID: "ho_1", key: key))
        #expect(try Self.bytes(knownHosts.path) == before)
        let pins = try knownHosts.contents().pins
        #expect(pins.map(\.relay) == ["relay.example.com:7443"])
        #expect(pins.map(\.line) == [1])
        #expect(pins.map(\.key.rawRepresentation) == [key.rawRepresentation])
    }

    @Test("a changed key is refused with both fingerprints, the pin's line, how to verify and how to re-pin")
    func changedKeyRefused() throws {
        let folder = try TemporaryFolder()
        let knownHosts = Self.knownHosts(folder)
        try FileManager.default.createDirectory(atPath: folder.file("supportrelay"), withIntermediateDirectories: false)
        try FileModes.write(
            knownHosts.path, "# pins\n\nrelay.example.com:7443 ho_0 ed25519 \(KeyFingerprint.base64(Curve25519.Signing.PrivateKey().publicKey))\n", mode: 0o600)
        let pinned = Curve25519.Signing.PrivateKey().publicKey
        let presented = Curve25519.Signing.PrivateKey().publicKey
        try knownHosts.pin(relay: Self.relay, hostID: "ho_1", key: pinned)
        let before = try Self.bytes(knownHosts.path)

        let error = #expect(throws: KnownHostsError.self) { try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: presented) }
        #expect(error?.kind == .keyChanged)
        #expect(error?.line == 4)
        #expect(error?.pinnedFingerprint == KeyFingerprint.of(pinned))
        #expect(error?.presentedFingerprint == KeyFingerprint.of(presented))
        let message = error?.message ?? ""
        for part in [
            "has changed", KeyFingerprint.of(pinned), KeyFingerprint.of(presented), "line 4 of \(knownHosts.path)", "intercepting", "the relay",
            "enrolled again", "key file was replaced", "relay-agent keygen --show --host-id ho_1",
            "delete line 4 of \(knownHosts.path)", "relay-agent keygen --forget-host ho_1 --relay relay.example.com:7443",
        ] {
            #expect(message.contains(part), "missing: \(part)")
        }
        // Pinning the presented key is refused the same way, and changes nothing.
        let pinError = #expect(throws: KnownHostsError.self) { try knownHosts.pin(relay: Self.relay, hostID: "ho_1", key: presented) }
        #expect(pinError?.kind == .keyChanged)
        #expect(try Self.bytes(knownHosts.path) == before)
        // After forgetting, the new key is a first use.
        #expect(try knownHosts.forget(relay: Self.relay, hostID: "ho_1") == 1)
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: presented) == .unknown)
    }

    @Test("when several lines pin one host, any of their keys is accepted")
    func severalPins() throws {
        let folder = try TemporaryFolder()
        let knownHosts = Self.knownHosts(folder)
        let old = Curve25519.Signing.PrivateKey().publicKey
        let new = Curve25519.Signing.PrivateKey().publicKey
        try knownHosts.pin(relay: Self.relay, hostID: "ho_1", key: old)
        var text = try String(contentsOfFile: knownHosts.path, encoding: .utf8)
        text += "relay.example.com:7443\tho_1   ed25519 \(KeyFingerprint.base64(new)) # the new key, added by hand\n"
        try FileModes.write(knownHosts.path, text, mode: 0o600)
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: old) == .known)
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: new) == .known)
        #expect(throws: KnownHostsError.self) { try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: Curve25519.Signing.PrivateKey().publicKey) }
        #expect(try knownHosts.forget(relay: Self.relay, hostID: "ho_1") == 2)
    }

    /// A file with everything a person or another version may leave in it.
    static func foreignFile(otherKey: String) -> [UInt8] {
        var bytes = Array("# SupportRelay pins\n\n   # indented comment\n".utf8)
        bytes += Array("relay.example.com:7443 ho_9 ed448 AAAA\n".utf8)  // line 4: a key type of a later version
        bytes += Array("this line is not a pin\n".utf8)  // line 5
        bytes += [0x72, 0x20, 0xFF, 0xFE, 0x0A]  // line 6: not UTF-8
        bytes += Array("relay.example.com:7443 ho_8 ed25519 \(otherKey)\r\n".utf8)  // line 7: CRLF, a valid pin
        bytes += Array("relay.example.com:7443 ho_7 ed25519 \(otherKey) trailing words\n".utf8)  // line 8
        bytes += Array("# last line without a newline".utf8)  // line 9
        return bytes
    }

    @Test("comments, blank lines and lines this version cannot use survive pin and forget byte for byte, and are reported")
    func foreignLinesSurvive() throws {
        let folder = try TemporaryFolder()
        let reports = Reports()
        let knownHosts = Self.knownHosts(folder, reports: reports)
        try FileManager.default.createDirectory(atPath: folder.file("supportrelay"), withIntermediateDirectories: false)
        let otherKey = Curve25519.Signing.PrivateKey().publicKey
        let original = Self.foreignFile(otherKey: KeyFingerprint.base64(otherKey))
        try Data(original).write(to: URL(fileURLWithPath: knownHosts.path))
        try FileModes.set(knownHosts.path, 0o600)

        let key = Curve25519.Signing.PrivateKey().publicKey
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: key) == .unknown)
        #expect(reports.all.map(\.line) == [4, 5, 6, 8])
        #expect(reports.all.allSatisfy { $0.path == knownHosts.path && $0.description.contains("kept and ignored") })
        #expect(reports.all[0].reason.contains("ed448"))
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_8", key: otherKey) == .known)

        try knownHosts.pin(relay: Self.relay, hostID: "ho_1", key: key)
        let pinned = try Self.bytes(knownHosts.path)
        let newLine = Array("relay.example.com:7443 ho_1 ed25519 \(KeyFingerprint.base64(key))\n".utf8)
        #expect(pinned == original + [0x0A] + newLine, "the old lines are kept as they were; the pin is appended")
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: key) == .known)

        #expect(try knownHosts.forget(relay: Self.relay, hostID: "ho_1") == 1)
        #expect(try Self.bytes(knownHosts.path) == original + [0x0A])
        let contents = try knownHosts.contents()
        #expect(contents.pins.map(\.hostID) == ["ho_8"])
        #expect(contents.problems.map(\.line) == [4, 5, 6, 8])
    }

    @Test("forget removes only that relay and host; forgetting what is not pinned leaves the file alone")
    func forgetRemovesOnlyThatPair() throws {
        let folder = try TemporaryFolder()
        let knownHosts = Self.knownHosts(folder)
        let keys = (0..<4).map { _ in Curve25519.Signing.PrivateKey().publicKey }
        try knownHosts.pin(relay: Self.relay, hostID: "ho_1", key: keys[0])
        try knownHosts.pin(relay: Self.relay, hostID: "ho_2", key: keys[1])
        try knownHosts.pin(relay: "other.example.com:7443", hostID: "ho_1", key: keys[2])
        try knownHosts.pin(relay: "relay.example.com:8443", hostID: "ho_1", key: keys[3])

        #expect(try knownHosts.forget(relay: "Relay.Example.com", hostID: "ho_1") == 1)
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: keys[0]) == .unknown)
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_2", key: keys[1]) == .known)
        #expect(try knownHosts.check(relay: "other.example.com:7443", hostID: "ho_1", key: keys[2]) == .known)
        #expect(try knownHosts.check(relay: "relay.example.com:8443", hostID: "ho_1", key: keys[3]) == .known)

        let before = try Self.bytes(knownHosts.path)
        #expect(try knownHosts.forget(relay: Self.relay, hostID: "ho_1") == 0)
        #expect(try knownHosts.forget(relay: Self.relay, hostID: "ho_9") == 0)
        #expect(try Self.bytes(knownHosts.path) == before)
        // No file at all: nothing to forget, and no file is made.
        let empty = try TemporaryFolder()
        #expect(try Self.knownHosts(empty).forget(relay: Self.relay, hostID: "ho_1") == 0)
        #expect(try empty.names() == [])
    }

    @Test("a damaged line for the host being checked fails closed instead of counting as a first use; forget removes it")
    func damagedPinFailsClosed() throws {
        let folder = try TemporaryFolder()
        let reports = Reports()
        let knownHosts = Self.knownHosts(folder, reports: reports)
        try FileManager.default.createDirectory(atPath: folder.file("supportrelay"), withIntermediateDirectories: false)
        try FileModes.write(knownHosts.path, "# x\nrelay.example.com ho_1 ed25519 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPc\n", mode: 0o600)
        let key = Curve25519.Signing.PrivateKey().publicKey
        let error = #expect(throws: KnownHostsError.self) { try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: key) }
        #expect(error?.kind == .invalidPin)
        #expect(error?.line == 2)
        #expect(error?.message.contains("line 2 of \(knownHosts.path)") == true)
        #expect(error?.message.contains("--forget-host ho_1 --relay relay.example.com:7443") == true)
        #expect(throws: KnownHostsError.self) { try knownHosts.pin(relay: Self.relay, hostID: "ho_1", key: key) }
        #expect(reports.all.isEmpty, "the host's own line is an error, not a warning")
        // Another host is not affected, but hears about the damaged line.
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_2", key: key) == .unknown)
        #expect(reports.all.map(\.line) == [2])
        #expect(try knownHosts.forget(relay: Self.relay, hostID: "ho_1") == 1)
        #expect(try String(contentsOfFile: knownHosts.path, encoding: .utf8) == "# x\n")
    }

    @Test("a known_hosts that others can change is refused; invalid relays and host ids are refused before any file is read")
    func refusals() throws {
        let folder = try TemporaryFolder()
        let knownHosts = Self.knownHosts(folder)
        let key = Curve25519.Signing.PrivateKey().publicKey
        try knownHosts.pin(relay: Self.relay, hostID: "ho_1", key: key)
        for mode in [0o664, 0o646, 0o622] {
            try FileModes.set(knownHosts.path, mode)
            let error = #expect(throws: KnownHostsError.self) { try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: key) }
            #expect(error?.kind == .exposed)
            #expect(error?.message.contains("chmod 600 \(knownHosts.path)") == true)
            #expect(throws: KnownHostsError.self) { try knownHosts.pin(relay: Self.relay, hostID: "ho_2", key: key) }
        }
        // Readable by others is allowed (the pins are public keys); the rewrite makes it 0600.
        try FileModes.set(knownHosts.path, 0o644)
        #expect(try knownHosts.check(relay: Self.relay, hostID: "ho_1", key: key) == .known)
        try knownHosts.pin(relay: Self.relay, hostID: "ho_2", key: key)
        #expect(try FileModes.mode(knownHosts.path) == 0o600)

        for hostID in ["", "a b", "a\tb", "#comment", "a\u{1B}[2Jb", "a\u{202E}b", String(repeating: "x", count: 257)] {
            let error = #expect(throws: KnownHostsError.self) { try knownHosts.pin(relay: Self.relay, hostID: hostID, key: key) }
            #expect(error?.kind == .invalidArgument)
        }
        for relay in ["", "relay example", "relay.example.com:0", "relay.example.com:99999", "[::1"] {
            let error = #expect(throws: KnownHostsError.self) { try knownHosts.check(relay: relay, hostID: "ho_1", key: key) }
            #expect(error?.kind == .invalidArgument)
        }
        #expect(KnownHosts.canonicalRelay("[2001:DB8::1]") == "[2001:db8::1]:7443")
    }

    @Test("a known_hosts that is a symbolic link stays one: the file it points to is rewritten")
    func symbolicLinkKept() throws {
        let folder = try TemporaryFolder()
        let knownHosts = Self.knownHosts(folder)
        try FileManager.default.createDirectory(atPath: folder.file("supportrelay"), withIntermediateDirectories: false)
        try FileModes.write(folder.file("real_known_hosts"), "# mine\n", mode: 0o600)
        try FileManager.default.createSymbolicLink(atPath: knownHosts.path, withDestinationPath: folder.file("real_known_hosts"))
        let key = Curve25519.Signing.PrivateKey().publicKey
        try knownHosts.pin(relay: Self.relay, hostID: "ho_1", key: key)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: knownHosts.path) == folder.file("real_known_hosts"))
        #expect(try String(contentsOfFile: folder.file("real_known_hosts"), encoding: .utf8).hasPrefix("# mine\nrelay.example.com:7443 ho_1 "))
    }

    @Test("viewers pinning at once keep every pin, and the file is whole", .timeLimit(.minutes(1)))
    func concurrentPins() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("supportrelay/known_hosts")
        let keys = (0..<24).map { _ in Curve25519.Signing.PrivateKey().publicKey.rawRepresentation }
        let problems = Reports()
        let failures = Collected<String>()
        DispatchQueue.concurrentPerform(iterations: keys.count) { index in
            // Each viewer has its own KnownHosts, as separate processes would.
            let knownHosts = KnownHosts(path: path, report: { problems.add($0) })
            let key = try! Curve25519.Signing.PublicKey(rawRepresentation: keys[index])
            do {
                try knownHosts.pin(relay: Self.relay, hostID: "ho_\(index)", key: key)
            } catch {
                failures.add("\(error)")
            }
        }
        #expect(failures.all.isEmpty)
        #expect(problems.all.isEmpty)
        let contents = try KnownHosts(path: path).contents()
        #expect(contents.problems.isEmpty)
        #expect(Set(contents.pins.map(\.hostID)) == Set((0..<keys.count).map { "ho_\($0)" }))
        #expect(contents.pins.count == keys.count)
        for pin in contents.pins {
            #expect(pin.key.rawRepresentation == keys[Int(pin.hostID.dropFirst(3))!])
        }
        // Only the file and its lock file are left: no temporary files.
        #expect(try folder.names("supportrelay") == ["known_hosts", "known_hosts.lock"])
    }
}
