#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The relay's data folder is private to the user the relay runs as: the folder and its
/// sub-folders `0700`, every file in them (the database with its `-wal` and `-shm`
/// files, the development certificate and its key) `0600` (OPERATIONS.md "Data folder").
///
/// It is enforced each time the folder is opened, whatever the modes were before (an
/// `rsync` or `cp -r` without `-p`, a restored backup, a hand-made folder): the database
/// holds engineers' token digests and every company's usage history, and the key is the
/// relay's identity.
public enum DataFolder {
    /// One mode that was changed.
    public struct PermissionChange: Sendable, Hashable, CustomStringConvertible {
        public var path: String
        public var from: UInt32
        public var to: UInt32

        public var description: String { "\(self.path) \(Self.octal(self.from)) → \(Self.octal(self.to))" }

        /// `0644`-style.
        public static func octal(_ mode: UInt32) -> String {
            let digits = String(mode & 0o7777, radix: 8)
            return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
        }
    }

    /// The mode of folders in the data folder.
    public static let folderMode: UInt32 = 0o700
    /// The mode of files in the data folder.
    public static let fileMode: UInt32 = 0o600

    /// Makes `path` and everything in it private: a folder or file that grants anything to
    /// its group or to others gets ``folderMode`` or ``fileMode`` (a file that is already
    /// private, e.g. `0400`, is left as it is). Symbolic links inside are not followed.
    /// Returns what it changed, for the log.
    public static func makePrivate(_ path: String) throws -> [PermissionChange] {
        var changes: [PermissionChange] = []
        try Self.makePrivate(path, isRoot: true, depth: 0, changes: &changes)
        return changes
    }

    private static func makePrivate(_ path: String, isRoot: Bool, depth: Int, changes: inout [PermissionChange]) throws {
        var status = stat()
        // The data folder itself may be a symbolic link (e.g. to a larger disk); inside it, links are left alone.
        guard (isRoot ? stat(path, &status) : lstat(path, &status)) == 0 else {
            if errno == ENOENT, !isRoot { return }  // removed meanwhile (an SQLite -shm file)
            throw StoreError(.unavailable, "cannot read the permissions of \(path): \(Self.lastError()); check that the relay's user owns the data folder")
        }
        let mode = UInt32(status.st_mode)
        let kind = mode & UInt32(S_IFMT)
        let isFolder = kind == UInt32(S_IFDIR)
        guard isFolder || kind == UInt32(S_IFREG) else { return }
        if mode & 0o077 != 0 || (isFolder && mode & 0o700 != 0o700) {
            let wanted = isFolder ? Self.folderMode : Self.fileMode
            guard chmod(path, mode_t(wanted)) == 0 else {
                throw StoreError(
                    .unavailable,
                    "cannot make \(path) private (mode \(PermissionChange.octal(mode)), wanted \(PermissionChange.octal(wanted))): \(Self.lastError()); "
                        + "the relay's user must own its data folder: chown -R USER \(path)"
                )
            }
            changes.append(PermissionChange(path: path, from: mode & 0o7777, to: wanted))
        }
        // The data folder has one level of sub-folders (tls/); a little more is tolerated.
        guard isFolder, depth < 4, let folder = opendir(path) else { return }
        defer { closedir(folder) }
        var names: [String] = []
        while let entry = readdir(folder) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.append(name) }
        }
        for name in names.sorted() {
            try Self.makePrivate(path + "/" + name, isRoot: false, depth: depth + 1, changes: &changes)
        }
    }

    /// Whether a private key file given by the operator may be used: it must not be
    /// readable or writable by others, nor by its group, except a root-owned key that its
    /// group may only read (`0640`, the Debian `ssl-cert` convention; PostgreSQL applies
    /// the same rule to its key). Returns the refusal to show, or nil.
    public static func keyFileProblem(_ path: String) -> String? {
        guard let (mode, rootOwned) = Self.accessibleToOthers(path) else { return nil }
        return "the private key \(path) is accessible to other users (mode \(PermissionChange.octal(mode))); the relay does not use a key others can read. "
            + "Make it private: chmod 600 \(path)"
            + (rootOwned ? " (or chmod 640 \(path) to share a root-owned key with a group such as ssl-cert)" : "")
    }

    /// The same rule for another file that holds a secret (`what`, e.g. the config file
    /// with a database password): the refusal to show, or nil.
    public static func privateFileProblem(_ path: String, holding what: String) -> String? {
        guard let (mode, rootOwned) = Self.accessibleToOthers(path) else { return nil }
        return "the file \(path) holds \(what) and is accessible to other users (mode \(PermissionChange.octal(mode))); the relay does not use a secret "
            + "others can read. Make it private: chmod 600 \(path)"
            + (rootOwned ? " (or chmod 640 \(path) to share a root-owned file with the relay's group)" : "")
    }

    /// The mode of `path` and whether root owns it, if its group or others may use it
    /// beyond the one exception (root's file that its group may only read); nil if it is
    /// private enough, or cannot be read (reading it reports that).
    private static func accessibleToOthers(_ path: String) -> (mode: UInt32, rootOwned: Bool)? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        let mode = UInt32(status.st_mode) & 0o7777
        let groupReadOnly = mode & 0o070 == 0o040
        let allowed = mode & 0o007 == 0 && (mode & 0o070 == 0 || (status.st_uid == 0 && groupReadOnly))
        return allowed ? nil : (mode, status.st_uid == 0)
    }

    /// Who holds a data folder: a relay that runs on the SQLite file in it, or
    /// `relay-server store migrate`, which copies that file and must not while a relay
    /// writes to it.
    public enum Holder: Sendable {
        /// `relay-server serve` on the folder's SQLite file; relays may share it.
        case relay
        /// `store migrate --from` the folder: alone.
        case migration
    }

    /// Takes the data folder at `path` for `holder`: an advisory lock (`flock`) on the
    /// folder itself, shared for relays and exclusive for a migration, which the system
    /// releases when the process ends however it ends. Nil if the other kind holds it. On
    /// a file system without `flock`, or a folder that cannot be opened, the hold holds
    /// nothing: it is a safety net for the order OPERATIONS.md §11 gives (stop the
    /// relay, then migrate), not a guarantee.
    public static func hold(_ path: String, for holder: Holder) -> DataFolderHold? {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return DataFolderHold(descriptor: -1) }
        while flock(descriptor, (holder == .relay ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let busy = errno == EWOULDBLOCK
            close(descriptor)
            return busy ? nil : DataFolderHold(descriptor: -1)
        }
        return DataFolderHold(descriptor: descriptor)
    }

    private static func lastError() -> String { String(cString: strerror(errno)) }
}

/// A data folder taken by ``DataFolder/hold(_:for:)``: held until this is freed or the
/// process ends.
public final class DataFolderHold: Sendable {
    private let descriptor: Int32

    init(descriptor: Int32) { self.descriptor = descriptor }

    deinit {
        if self.descriptor >= 0 { close(self.descriptor) }
    }
}
