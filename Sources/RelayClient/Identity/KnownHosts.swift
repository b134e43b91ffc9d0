public import Crypto
import Foundation
import RelayWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The host keys a viewer has pinned: the first time an engineer connects to an enrolled
/// host through a relay, the host's identity key is pinned for that relay and host id;
/// afterwards only that key is accepted, so a relay (or anyone in the middle) that
/// presents another key is refused (docs/SECURITY.md §6.1).
///
/// The file, `<config folder>/known_hosts` by default (``ConfigFolder/knownHostsPath``),
/// is text, one pin a line:
///
///     # comments and blank lines are allowed
///     relay.example.com:7443 ho_7f3a9c2e ed25519 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=
///
/// The fields are separated by spaces or tabs: the relay as `HOST:PORT` (compared after
/// ``canonicalRelay(_:)``, so `Relay.Example.com` and `relay.example.com:7443` are one
/// relay), the host id (compared exactly), the key type, and the standard base64 of the
/// raw 32-byte public key. A `#` comment may follow the key.
///
/// Lines this version cannot use (another key type, a damaged line, text that is not
/// UTF-8) are kept byte for byte whenever the file is rewritten, and reported through
/// ``report`` as ``Problem``s, never fatal, with one exception: a line that names the
/// very relay and host being checked but is not a valid pin makes ``check(relay:hostID:key:)``
/// and ``pin(relay:hostID:key:)`` fail (``KnownHostsError/Kind/invalidPin``), so that a
/// damaged pin never silently turns into a first use. ``forget(relay:hostID:)`` removes
/// such lines too.
///
/// When several valid lines pin the same relay and host, a key that matches any of them
/// is accepted (a user may add the new key before removing the old one).
///
/// The file is written with mode `0600` in a folder created with mode `0700`; a file that
/// other users can change is refused. Every change re-reads the file while holding a lock
/// (`flock` on `known_hosts.lock` beside it), writes the whole new file to a temporary
/// file and renames it into place: two viewers pinning at once both keep their pins, and
/// a reader never sees half a file.
public struct KnownHosts: Sendable {
    /// What ``check(relay:hostID:key:)`` found.
    public enum Verdict: Sendable, Hashable {
        /// The key is the one pinned for this relay and host.
        case known
        /// Nothing is pinned for this relay and host: first use. The caller decides whether
        /// to trust the key and ``pin(relay:hostID:key:)`` it.
        case unknown
    }

    /// A valid pin.
    public struct Pin: Sendable {
        /// The relay, as ``canonicalRelay(_:)`` writes it.
        public let relay: String
        public let hostID: String
        public let key: Curve25519.Signing.PublicKey
        /// The line it is on, from 1.
        public let line: Int
    }

    /// A line that is kept but not used.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The `known_hosts` file.
        public let path: String
        /// The line, from 1.
        public let line: Int
        /// Why it is not used.
        public let reason: String

        public var description: String { "\(self.path) line \(self.line): \(self.reason); the line is kept and ignored" }
    }

    /// The file.
    public let path: String
    /// Called with each unusable line that ``check(relay:hostID:key:)`` and
    /// ``forget(relay:hostID:)`` come across (``pin(relay:hostID:key:)`` follows a check,
    /// and does not repeat its warnings).
    public let report: @Sendable (Problem) -> Void

    /// The pins in the file at `path` (it need not exist yet). Unusable lines are passed
    /// to `report`, by default printed on standard error as warnings.
    public init(path: String, report: @escaping @Sendable (Problem) -> Void = KnownHosts.warnOnStandardError) {
        self.path = path
        self.report = report
    }

    /// Prints `warning: <problem>` on standard error.
    public static let warnOnStandardError: @Sendable (Problem) -> Void = { problem in
        FileHandle.standardError.write(Data("warning: \(PeerText.printable(problem.description))\n".utf8))
    }

    /// The key type written in the file.
    public static let keyType = "ed25519"
    /// A larger file is refused rather than read (about 100 bytes a pin).
    static let sizeLimit = 16 << 20

    // MARK: - Checking, pinning, forgetting

    /// Whether `key` is the key pinned for host `hostID` at `relay` (`HOST:PORT`, as the
    /// viewer's `--relay`).
    ///
    /// Returns ``Verdict/known`` or ``Verdict/unknown`` (nothing pinned). Throws a
    /// ``KnownHostsError/Kind/keyChanged`` error, whose message shows both fingerprints,
    /// the line of the pin, and how to verify and re-pin, when another key is pinned.
    public func check(relay: String, hostID: String, key: Curve25519.Signing.PublicKey) throws(KnownHostsError) -> Verdict {
        let target = try self.target(relay: relay, hostID: hostID)
        let document = try self.read()
        return try self.verdict(document, target, key, reporting: true)
    }

    /// Pins `key` for host `hostID` at `relay`, appending a line to the file (creating the
    /// file and its folder if needed). Returns false if exactly this pin was already there.
    /// Throws a ``KnownHostsError/Kind/keyChanged`` error if another key is pinned for them
    /// meanwhile (another viewer pinned first): the caller must not trust `key` then.
    @discardableResult
    public func pin(relay: String, hostID: String, key: Curve25519.Signing.PublicKey) throws(KnownHostsError) -> Bool {
        let target = try self.target(relay: relay, hostID: hostID)
        return try self.change { (document: inout Document) throws(KnownHostsError) -> Bool in
            guard try self.verdict(document, target, key, reporting: false) == .unknown else { return false }
            document.append(Array("\(target.relay) \(target.hostID) \(Self.keyType) \(KeyFingerprint.base64(key))".utf8))
            return true
        }
    }

    /// Removes every line for host `hostID` at `relay`: its pins, and lines that name them
    /// but are not valid pins. Returns how many lines were removed (0: nothing was
    /// pinned, and the file is left as it was).
    @discardableResult
    public func forget(relay: String, hostID: String) throws(KnownHostsError) -> Int {
        let target = try self.target(relay: relay, hostID: hostID)
        // Nothing to remove: no lock taken, no file or folder made.
        let current = try self.read()
        guard !Self.lines(of: target, in: current).isEmpty else {
            self.reportProblems(current, except: target)
            return 0
        }
        return try self.change { (document: inout Document) throws(KnownHostsError) -> Int in
            let removed = Self.lines(of: target, in: document)
            self.reportProblems(document, except: target)
            document.remove(removed)
            return removed.count
        }
    }

    /// The indices of the lines for `target`: its pins, and lines that name it but are not valid pins.
    private static func lines(of target: Target, in document: Document) -> Set<Int> {
        var lines = Set<Int>()
        for (index, entry) in document.entries.enumerated() {
            switch entry {
            case .pin(let relay, let hostID, _) where relay == target.relay && hostID == target.hostID:
                lines.insert(index)
            case .invalid(let relay?, let hostID?, _) where relay == target.relay && hostID == target.hostID:
                lines.insert(index)
            default:
                break
            }
        }
        return lines
    }

    /// Every valid pin in the file, and every line that is kept but not used, in file order.
    /// A missing file has neither.
    public func contents() throws(KnownHostsError) -> (pins: [Pin], problems: [Problem]) {
        let document = try self.read()
        var pins: [Pin] = []
        var problems: [Problem] = []
        for (index, entry) in document.entries.enumerated() {
            switch entry {
            case .pin(let relay, let hostID, let key): pins.append(Pin(relay: relay, hostID: hostID, key: key, line: index + 1))
            case .invalid(_, _, let reason): problems.append(Problem(path: self.path, line: index + 1, reason: reason))
            case .ignored: break
            }
        }
        return (pins, problems)
    }

    /// How a relay is written in the file and compared: `HOST:PORT` as ``RelayAddress``
    /// parses it (the port 7443 when none is given; IPv6 in brackets), the host in lower case.
    public static func canonicalRelay(_ relay: String) -> String? {
        guard let address = try? RelayAddress(parsing: relay) else { return nil }
        return RelayAddress(host: address.host.lowercased(), port: address.port).description
    }

    // MARK: - The decision

    private struct Target {
        var relay: String
        var hostID: String
    }

    private func target(relay: String, hostID: String) throws(KnownHostsError) -> Target {
        guard let canonical = Self.canonicalRelay(relay) else {
            throw KnownHostsError(
                .invalidArgument, path: self.path,
                "\"\(PeerText.printable(relay, limit: 80))\" is not a relay address; write it as HOST:PORT, e.g. relay.example.com:7443")
        }
        guard Self.isValidHostID(hostID) else {
            throw KnownHostsError(
                .invalidArgument, path: self.path,
                "\"\(PeerText.printable(hostID, limit: 80))\" cannot be a host id in known_hosts: a host id is 1 to 256 bytes without spaces or control characters and does not start with #; use the id `relay-server host enroll` printed"
            )
        }
        return Target(relay: canonical, hostID: hostID)
    }

    /// A host id fits in one field: printable, no white space, not a comment.
    static func isValidHostID(_ hostID: String) -> Bool {
        !hostID.isEmpty && hostID.utf8.count <= 256 && !hostID.hasPrefix("#")
            && hostID.unicodeScalars.allSatisfy {
                !$0.properties.isWhitespace && $0.properties.generalCategory != .control && $0.properties.generalCategory != .format
            }
    }

    private func verdict(_ document: Document, _ target: Target, _ key: Curve25519.Signing.PublicKey, reporting: Bool) throws(KnownHostsError) -> Verdict {
        if reporting { self.reportProblems(document, except: target) }
        var firstOther: (line: Int, key: Curve25519.Signing.PublicKey)?
        for (index, entry) in document.entries.enumerated() {
            switch entry {
            case .invalid(let relay?, let hostID?, let reason) where relay == target.relay && hostID == target.hostID:
                throw KnownHostsError(
                    .invalidPin, path: self.path, line: index + 1,
                    "line \(index + 1) of \(self.path) is meant to pin host \(target.hostID) at relay \(target.relay), but \(reason); no key is trusted for this host until the line is fixed or removed (delete the line, or run `relay-agent keygen --forget-host \(PrivateFile.quoted(target.hostID)) --relay \(target.relay)`, then connect again to pin the host's key)"
                )
            case .pin(let relay, let hostID, let pinned) where relay == target.relay && hostID == target.hostID:
                if pinned.rawRepresentation == key.rawRepresentation { return .known }
                if firstOther == nil { firstOther = (index + 1, pinned) }
            default:
                break
            }
        }
        guard let (line, pinned) = firstOther else { return .unknown }
        throw self.keyChanged(target, line: line, pinned: KeyFingerprint.of(pinned), presented: KeyFingerprint.of(key))
    }

    private func keyChanged(_ target: Target, line: Int, pinned: String, presented: String) -> KnownHostsError {
        let host = PrivateFile.quoted(target.hostID)
        let message = """
            The identity key of host \(target.hostID) at relay \(target.relay) has changed; the session was not started.
              pinned (line \(line) of \(self.path)): \(pinned)
              presented now: \(presented)
            Someone may be intercepting this connection (the relay, or an attacker on the network), or the host was enrolled again or its key file was replaced.
            To verify, ask the host's owner for its key's fingerprint: `relay-agent keygen --show --host-id \(host)` on the host prints it, and so does the host agent when it starts.
            Only if it is the presented one, re-pin: delete line \(line) of \(PrivateFile.quoted(self.path)), or run `relay-agent keygen --forget-host \(host) --relay \(target.relay)`, then connect again.
            """
        return KnownHostsError(.keyChanged, path: self.path, line: line, pinnedFingerprint: pinned, presentedFingerprint: presented, message)
    }

    private func reportProblems(_ document: Document, except target: Target) {
        for (index, entry) in document.entries.enumerated() {
            guard case .invalid(let relay, let hostID, let reason) = entry else { continue }
            // The target's own invalid lines are an error (check, pin) or removed (forget).
            if relay == target.relay && hostID == target.hostID { continue }
            self.report(Problem(path: self.path, line: index + 1, reason: reason))
        }
    }

    // MARK: - The file

    /// The lines of the file, each kept as it was, and what each means.
    struct Document {
        enum Entry {
            /// A blank line or a comment.
            case ignored
            case pin(relay: String, hostID: String, key: Curve25519.Signing.PublicKey)
            /// A line that is not a valid pin; the relay and host id when they could be read.
            case invalid(relay: String?, hostID: String?, reason: String)
        }

        private(set) var lines: [[UInt8]]
        private(set) var entries: [Entry]

        init(_ bytes: [UInt8]) {
            var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
            // "a\nb\n" splits into "a", "b" and an empty last part that is no line; so does "".
            if bytes.isEmpty || bytes.last == 0x0A { lines.removeLast() }
            self.lines = lines
            self.entries = lines.map(Self.parse)
        }

        mutating func append(_ line: [UInt8]) {
            self.lines.append(line)
            self.entries.append(Self.parse(line))
        }

        mutating func remove(_ indices: Set<Int>) {
            self.lines = self.lines.enumerated().filter { !indices.contains($0.offset) }.map(\.element)
            self.entries = self.entries.enumerated().filter { !indices.contains($0.offset) }.map(\.element)
        }

        /// The file's bytes: the lines, each ending in a newline.
        var bytes: [UInt8] { self.lines.flatMap { $0 + [0x0A] } }

        static func parse(_ line: [UInt8]) -> Entry {
            guard let text = String(validating: line, as: UTF8.self) else { return .invalid(relay: nil, hostID: nil, reason: "it is not UTF-8 text") }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { return .ignored }
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            let hostID = fields.count > 1 ? fields[1] : nil
            let expected = "a pin is RELAY HOST-ID \(KnownHosts.keyType) BASE64-KEY"
            guard let relay = KnownHosts.canonicalRelay(fields[0]) else {
                return .invalid(relay: nil, hostID: hostID, reason: "its first field is not a relay address (\(expected))")
            }
            guard fields.count >= 4 else { return .invalid(relay: relay, hostID: hostID, reason: "it has \(fields.count) fields (\(expected))") }
            guard fields.count == 4 || fields[4].hasPrefix("#") else {
                return .invalid(relay: relay, hostID: hostID, reason: "it has text after the key that is not a # comment (\(expected))")
            }
            guard fields[2] == KnownHosts.keyType else {
                return .invalid(
                    relay: relay, hostID: hostID,
                    reason: "its key type \"\(PeerText.printable(fields[2], limit: 40))\" is not one this relay-agent knows (\(KnownHosts.keyType))")
            }
            guard let raw = Data(base64Encoded: fields[3]), raw.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
                return .invalid(relay: relay, hostID: hostID, reason: "its key is not the base64 of a 32-byte Ed25519 public key")
            }
            return .pin(relay: relay, hostID: fields[1], key: key)
        }
    }

    /// The file's contents; an empty document if there is no file.
    private func read() throws(KnownHostsError) -> Document {
        let contents: PrivateFile.Contents?
        do {
            contents = try PrivateFile.load(self.path, limit: Self.sizeLimit)
        } catch {
            if error.code == EFBIG {
                throw KnownHostsError(
                    .unavailable, path: self.path,
                    "\(self.path) is larger than \(Self.sizeLimit >> 20) MiB, far more than any list of pins; check what it holds")
            }
            throw KnownHostsError(.unavailable, path: self.path, "\(error.sentence); check the path and that you own the file")
        }
        guard let contents else { return Document([]) }
        // Whoever can change the file can pin their own key for any host.
        guard contents.mode & 0o022 == 0 else {
            throw KnownHostsError(
                .exposed, path: self.path,
                "\(self.path) can be changed by other users (mode \(PrivateFile.octal(contents.mode))), so its pins prove nothing; make it private: chmod 600 \(PrivateFile.quoted(self.path)), and check that its pins are yours"
            )
        }
        return Document(contents.bytes)
    }

    /// Re-reads the file under the lock, lets `body` change it, and writes it back
    /// (atomically, mode `0600`) if `body` changed anything.
    private func change<Result>(_ body: (inout Document) throws(KnownHostsError) -> Result) throws(KnownHostsError) -> Result {
        let target = self.resolvedPath()
        let folder = PrivateFile.folder(of: target)
        do {
            try PrivateFile.makeFolders(folder)
        } catch {
            throw KnownHostsError(.unavailable, path: self.path, "\(error.sentence); check that you may create it")
        }
        do {
            return try PrivateFile.withLock(target + ".lock") {
                var document = try self.read()
                let before = document.bytes
                let result = try body(&document)
                let after = document.bytes
                if after != before {
                    try PrivateFile.store(after, at: target, replacing: true)
                }
                return result
            }
        } catch let error as KnownHostsError {
            throw error
        } catch let failure as PrivateFile.Failure {
            throw KnownHostsError(.unavailable, path: self.path, "\(failure.sentence); check that you may write to the folder and that the disk is not full")
        } catch {
            throw KnownHostsError(.unavailable, path: self.path, "cannot change \(self.path): \(error)")
        }
    }

    /// The file a symbolic link at ``path`` points to (so that rewriting keeps the link),
    /// or ``path``.
    private func resolvedPath() -> String {
        guard let resolved = realpath(self.path, nil) else { return self.path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
