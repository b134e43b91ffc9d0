import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The file-system steps behind the identity files (key files, `known_hosts`): files
/// that no other user may read or change, written so that no one, not even a second
/// agent of the same user running at the same moment, ever sees half of one.
///
/// Each new file is first written in full to a temporary file in the same folder,
/// created with `O_CREAT | O_EXCL` and mode `0600` (so it is never readable by anyone
/// else, not even briefly), flushed to disk, then put in place: by `link` when an
/// existing file must not be replaced (a key), by `rename` when it must (`known_hosts`).
enum PrivateFile {
    /// The mode of the files.
    static let fileMode: mode_t = 0o600
    /// The mode of folders created for them.
    static let folderMode: mode_t = 0o700

    /// A failed system call: what was being done, to which path, and `errno`.
    struct Failure: Error {
        var step: String
        var path: String
        var code: Int32

        /// `strerror` of ``code``.
        var reason: String { String(cString: strerror(self.code)) }
        /// "cannot STEP PATH: REASON".
        var sentence: String { "cannot \(self.step) \(self.path): \(self.reason)" }
    }

    /// What reading a file found.
    struct Contents {
        /// The permission bits (`st_mode & 0o7777`) of the file that was read.
        var mode: mode_t
        var bytes: [UInt8]
    }

    /// Reads a regular file of at most `limit` bytes. Returns nil if there is no file at
    /// `path`. The mode is taken from the descriptor that is read, so that it belongs to
    /// the same file even if the path is replaced meanwhile.
    static func load(_ path: String, limit: Int) throws(Failure) -> Contents? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }
            throw Failure(step: "open", path: path, code: errno)
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw Failure(step: "read the permissions of", path: path, code: errno) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw Failure(step: "read", path: path, code: EISDIR) }
        guard Int(status.st_size) <= limit else { throw Failure(step: "read", path: path, code: EFBIG) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(step: "read", path: path, code: errno)
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            // A file that grew past the limit after fstat.
            guard bytes.count <= limit else { throw Failure(step: "read", path: path, code: EFBIG) }
        }
        return Contents(mode: status.st_mode & 0o7777, bytes: bytes)
    }

    /// The permission bits of `path` (following a symbolic link), or nil if nothing is there.
    static func mode(_ path: String) throws(Failure) -> mode_t? {
        var status = stat()
        guard stat(path, &status) == 0 else {
            if errno == ENOENT { return nil }
            throw Failure(step: "read the permissions of", path: path, code: errno)
        }
        return status.st_mode & 0o7777
    }

    /// Whether `path` is a folder (following a symbolic link).
    static func isFolder(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFDIR
    }

    /// Creates `path` and any missing folder above it, each with mode `0700`; folders that
    /// exist are left as they are.
    static func makeFolders(_ path: String) throws(Failure) {
        guard !path.isEmpty, !Self.isFolder(path) else { return }
        let parent = Self.folder(of: path)
        if parent != path { try Self.makeFolders(parent) }
        guard mkdir(path, Self.folderMode) == 0 else {
            let code = errno
            // Made by someone else meanwhile: left as it is, like any existing folder.
            if code == EEXIST, Self.isFolder(path) { return }
            throw Failure(step: "create the folder", path: path, code: code == EEXIST ? ENOTDIR : code)
        }
        // The umask may have taken bits away; 0700 is what a new folder must have.
        guard chmod(path, Self.folderMode) == 0 else { throw Failure(step: "set the permissions of", path: path, code: errno) }
    }

    /// Writes `bytes` to a new file at `path` with mode `0600`. With `replacing` false, an
    /// existing file is never touched: the call throws `EEXIST` instead (so two agents
    /// creating the same key at once end up with one key, the first one). With
    /// `replacing` true, an existing file is replaced in one step. Either way a reader
    /// sees the old file or the whole new one, never a part.
    static func store(_ bytes: [UInt8], at path: String, replacing: Bool) throws(Failure) {
        let folder = Self.folder(of: path)
        let name = String(path.split(separator: "/").last ?? "file")
        let temporary = Self.join(folder, ".\(name).tmp-\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
        do {
            try Self.createPrivate(temporary, bytes)
        } catch {
            // Name the folder: that is where the user can do something.
            throw Failure(step: error.code == ENOENT ? "create a file in the folder" : "create a file in", path: folder, code: error.code)
        }
        var placed = false
        defer { if !placed { unlink(temporary) } }
        if replacing {
            guard rename(temporary, path) == 0 else { throw Failure(step: "replace", path: path, code: errno) }
            placed = true
        } else if link(temporary, path) != 0 {
            // link() fails with EEXIST instead of replacing: no key is ever overwritten.
            let code = errno
            guard [EPERM, ENOTSUP, EOPNOTSUPP, EMLINK, ENOSYS].contains(code) else { throw Failure(step: "create", path: path, code: code) }
            // A file system without hard links (FAT, some network file systems): create
            // the file itself, exclusively and private; a reader at that very moment may
            // see it incomplete, which is reported as a damaged key, not used.
            try Self.createPrivate(path, bytes)
        }
        Self.syncFolder(folder)
    }

    /// Creates a file that must not exist yet, with `O_CREAT | O_EXCL` and mode `0600`, and
    /// writes `bytes` to disk. On failure nothing is left behind.
    private static func createPrivate(_ path: String, _ bytes: [UInt8]) throws(Failure) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, Self.fileMode)
        guard descriptor >= 0 else { throw Failure(step: "create", path: path, code: errno) }
        var complete = false
        defer {
            close(descriptor)
            if !complete { unlink(path) }
        }
        // open() applies the umask, which can only take bits away; set exactly 0600.
        guard fchmod(descriptor, Self.fileMode) == 0 else { throw Failure(step: "set the permissions of", path: path, code: errno) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(step: "write", path: path, code: errno)
            }
            written += count
        }
        guard fsync(descriptor) == 0 else { throw Failure(step: "write", path: path, code: errno) }
        complete = true
    }

    /// Flushes a folder's entries to disk (after a rename or link), so that a crash just
    /// after cannot lose a key that was printed as created.
    private static func syncFolder(_ folder: String) {
        let descriptor = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }

    /// Runs `body` holding an exclusive advisory lock (`flock`) on the file `lockPath`
    /// (created with mode `0600` if needed): agents of the same user that change one file
    /// take turns, so that neither loses the other's change.
    static func withLock<Result>(_ lockPath: String, _ body: () throws -> Result) throws -> Result {
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, Self.fileMode)
        guard descriptor >= 0 else { throw Failure(step: "open the lock file", path: lockPath, code: errno) }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else { throw Failure(step: "lock", path: lockPath, code: errno) }
        }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }

    /// The folder part of `path`: "." for a bare name, "/" for a file at the root.
    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let folder = String(path[..<slash])
        return folder.isEmpty ? "/" : folder
    }

    /// `folder/name`, without a doubled slash.
    static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    /// `path` as a shell would need it in a command the user copies: quoted when it holds
    /// anything but letters, digits and `/._-~`.
    static func quoted(_ path: String) -> String {
        path.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "/._-~+:@".contains($0)) }
            ? path : "'\(path.replacingOccurrences(of: "'", with: "'\\''"))'"
    }

    /// `0644`-style.
    static func octal(_ mode: mode_t) -> String {
        let digits = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
