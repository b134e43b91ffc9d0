public import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An Ed25519 identity key in a file only its owner can read (docs/SECURITY.md §7):
/// an engineer's key in their config folder, an enrolled host's key on the host.
///
/// The file is text, two lines and a final newline:
///
///     supportrelay-ed25519-private-key-v1
///     <standard base64 of the 32-byte raw private key>
///
/// It is created with mode `0600`, in full before it appears under its name (see
/// ``create(at:)``), and never replaced: a new host key makes every viewer that pinned
/// the old one refuse the host, so replacing one is the user's deliberate act (delete the
/// file). A file that its group or other users can read or change is refused, as ssh
/// refuses such a private key. Errors name the file and say what to do; none of them
/// quotes anything from the file, which holds the key.
public enum IdentityKeyFile {
    /// The first line of a key file: names the format and its version.
    public static let header = "supportrelay-ed25519-private-key-v1"

    /// A key file is about 100 bytes; anything much larger is not one.
    static let sizeLimit = 4096

    /// Loads the key at `path`, creating a new one there if there is no file. `created`
    /// says which (a host prints its new fingerprint; an agent may say where the key is).
    /// The folder must exist (``ConfigFolder/create()`` makes the default one). When two
    /// agents create the same key at once, both get the one that was written first.
    public static func loadOrCreate(at path: String) throws(IdentityFileError) -> (key: Curve25519.Signing.PrivateKey, created: Bool) {
        do {
            return (try Self.load(at: path), false)
        } catch  where error.kind == .notFound {
            // Created below, unless another agent creates it first.
        }
        do {
            return (try Self.create(at: path), true)
        } catch  where error.kind == .alreadyExists {
            return (try Self.load(at: path), false)
        }
    }

    /// Loads the key at `path`. Throws ``IdentityFileError/Kind/notFound`` if there is no
    /// file, ``IdentityFileError/Kind/exposed`` if its group or other users can read or
    /// change it, ``IdentityFileError/Kind/malformed`` if it is not a key file.
    public static func load(at path: String) throws(IdentityFileError) -> Curve25519.Signing.PrivateKey {
        let read: PrivateFile.Contents?
        do {
            read = try PrivateFile.load(path, limit: Self.sizeLimit)
        } catch {
            if error.code == EFBIG { throw Self.malformed(path) }
            throw IdentityFileError(.unavailable, path: path, "\(error.sentence); check the path and that you own the file")
        }
        guard let contents = read else {
            throw IdentityFileError(.notFound, path: path, "there is no identity key at \(path); create one with `relay-agent keygen` (or give the right file)")
        }
        // As ssh does for private keys: a key others can read is no secret, and one others
        // can change may be theirs.
        guard contents.mode & 0o077 == 0 else {
            throw IdentityFileError(
                .exposed, path: path,
                "the identity key \(path) can be read or changed by other users (mode \(PrivateFile.octal(contents.mode))); it must be private to you: "
                    + "run chmod 600 \(PrivateFile.quoted(path)). If others may have copied it, delete it and create a new key with `relay-agent keygen`."
            )
        }
        return try Self.decode(contents.bytes, path: path)
    }

    /// Creates a new key at `path`, with mode `0600`. Throws
    /// ``IdentityFileError/Kind/alreadyExists`` if any file is there: a key is never
    /// replaced. The folder must exist.
    ///
    /// The key is written to a temporary file created with `O_CREAT | O_EXCL` and mode
    /// `0600` in the same folder, flushed to disk, then linked under its name (`link`
    /// fails rather than replacing a file). So no other user can read it at any moment,
    /// and no agent can read half a key.
    @discardableResult
    public static func create(at path: String) throws(IdentityFileError) -> Curve25519.Signing.PrivateKey {
        let key = Curve25519.Signing.PrivateKey()
        try Self.write(key, to: path)
        return key
    }

    /// Writes `key` to a new file at `path`, as ``create(at:)`` does with a new key
    /// (tests, and importing a key made elsewhere).
    public static func write(_ key: Curve25519.Signing.PrivateKey, to path: String) throws(IdentityFileError) {
        do {
            try PrivateFile.store(Array(Self.encode(key).utf8), at: path, replacing: false)
        } catch {
            switch error.code {
            case EEXIST:
                throw IdentityFileError(
                    .alreadyExists, path: path,
                    "\(path) already exists; a key file is never replaced. See the key with `relay-agent keygen --show`, or delete the file first to make a new key."
                )
            case ENOENT:
                let folder = PrivateFile.folder(of: path)
                throw IdentityFileError(
                    .unavailable, path: path,
                    "cannot create \(path): the folder \(folder) does not exist; create it (mkdir -m 700 \(PrivateFile.quoted(folder))) or choose another file")
            default:
                throw IdentityFileError(.unavailable, path: path, "\(error.sentence); check that you may write to its folder and that the disk is not full")
            }
        }
    }

    /// The text of a key file holding `key`.
    public static func encode(_ key: Curve25519.Signing.PrivateKey) -> String {
        Self.header + "\n" + key.rawRepresentation.base64EncodedString() + "\n"
    }

    /// Reads the text of a key file; `path` is for the message only.
    static func decode(_ bytes: [UInt8], path: String) throws(IdentityFileError) -> Curve25519.Signing.PrivateKey {
        // Lines end in "\n" (a "\r" before it and blanks around the text are tolerated);
        // after the two lines only empty lines may follow.
        let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard lines.first == Self.header else {
            let first = lines.first ?? ""
            if first.hasPrefix("supportrelay-") {
                throw IdentityFileError(
                    .malformed, path: path,
                    "\(path) is a SupportRelay key in a format this relay-agent does not read (its first line is not \(Self.header)); use the relay-agent that made it, or a newer one"
                )
            }
            if first.hasPrefix("-----BEGIN") {
                throw IdentityFileError(
                    .malformed, path: path,
                    "\(path) is a PEM or OpenSSH file, not a SupportRelay identity key (first line \(Self.header)); make a key with `relay-agent keygen`")
            }
            throw Self.malformed(path)
        }
        guard lines.count >= 2, lines.dropFirst(2).allSatisfy(\.isEmpty),
            let raw = Data(base64Encoded: lines[1]), raw.count == 32,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else { throw Self.malformed(path) }
        return key
    }

    private static func malformed(_ path: String) -> IdentityFileError {
        IdentityFileError(
            .malformed, path: path,
            "\(path) is not a SupportRelay identity key: its first line must be \(Self.header) and its second the 32-byte key in base64. "
                + "Restore the file from a backup, or delete it and make a new key with `relay-agent keygen` (viewers that pinned the old host key will then refuse this host until they re-pin it)."
        )
    }
}
