public import Crypto
import Foundation

/// The engineers an enrolled host lets in, by their end-to-end keys: without this list an
/// unattended host admits any engineer the relay pairs it with, so whoever runs the relay
/// decides (docs/SECURITY.md "A malicious relay"). With it, the host refuses a session
/// whose engineer's key (proved by the handshake, PROTOCOL.md §5.3) is not listed.
///
/// The file holds one key per line, `ed25519 BASE64 [comment]`, as `relay-agent keygen`
/// prints an engineer's key; blank lines and `#` comments are allowed. A line that is not
/// a key is an error, naming the file and the line: a typo must not lock out, or let in,
/// anyone silently.
public struct AuthorizedEngineers: Sendable {
    public struct Entry: Sendable, Hashable {
        /// The raw 32-byte public key.
        public var key: [UInt8]
        /// What follows the key on its line (usually the engineer's name).
        public var comment: String
    }

    public let path: String
    public let entries: [Entry]

    public init(path: String, entries: [Entry]) {
        self.path = path
        self.entries = entries
    }

    /// Reads the list; throws with the file and the line when it cannot.
    public static func load(from path: String) throws(IdentityFileError) -> AuthorizedEngineers {
        // Whoever may change the list decides who gets in: only its owner may.
        var status = stat()
        if stat(path, &status) == 0, status.st_mode & 0o022 != 0 {
            throw IdentityFileError(
                .exposed, path: path,
                "\(path) can be changed by other users (mode \(String(status.st_mode & 0o777, radix: 8))), who could add their own keys; run `chmod go-w \(path)`"
            )
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw IdentityFileError(
                .notFound, path: path,
                "cannot read the engineers' keys in \(path): give a readable UTF-8 file with one `ed25519 KEY name` line per engineer (relay-agent keygen --show prints each engineer's)"
            )
        }
        var entries: [Entry] = []
        // Lines end in LF or CRLF ("\r\n" is one Character, and a newline).
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "ed25519", let key = Data(base64Encoded: String(fields[1])), key.count == 32,
                (try? Curve25519.Signing.PublicKey(rawRepresentation: key)) != nil
            else {
                throw IdentityFileError(
                    .malformed, path: path,
                    "\(path) line \(index + 1) is not an engineer's key: write `ed25519 KEY name`, with KEY as `relay-agent keygen --show` prints it (44 characters of base64)"
                )
            }
            entries.append(Entry(key: Array(key), comment: fields.dropFirst(2).joined(separator: " ")))
        }
        guard !entries.isEmpty else {
            throw IdentityFileError(
                .malformed, path: path,
                "\(path) lists no engineer's key, so no one could connect: add one `ed25519 KEY name` line per engineer (relay-agent keygen --show prints it on their machine)"
            )
        }
        return AuthorizedEngineers(path: path, entries: entries)
    }

    /// The entry for `key`, if it is listed.
    public func entry(for key: Curve25519.Signing.PublicKey) -> Entry? {
        let raw = Array(key.rawRepresentation)
        return self.entries.first { $0.key == raw }
    }
}
