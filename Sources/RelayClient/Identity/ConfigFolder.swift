public import Crypto
public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The agent's folder for its own files, private to its user (mode `0700`):
/// `$XDG_CONFIG_HOME/supportrelay`, or `~/.config/supportrelay` when `XDG_CONFIG_HOME`
/// is unset, empty or not an absolute path (as the XDG Base Directory specification says).
///
/// It holds, each with mode `0600`:
/// - `engineer.key`: the engineer's identity key (``engineerKeyPath``);
/// - `host-<id>.key`: an enrolled host's identity key, on that host (``hostKeyPath(hostID:)``);
/// - `known_hosts`: the host keys a viewer pinned on first use (``knownHostsPath``), and
///   `known_hosts.lock`, which agents take turns on while changing it.
public struct ConfigFolder: Sendable, Hashable {
    /// The folder's name inside the XDG config folder.
    public static let name = "supportrelay"

    /// The folder.
    public let path: String

    /// A config folder at `path` (tests, and `--key-file`-style overrides).
    public init(path: String) {
        self.path = path
    }

    /// Where the config folder is for the user whose `environment` this is. `home` is
    /// their home folder; nil takes `HOME` from `environment`, then the user database.
    /// Nothing is created (``create()`` does that). Tests pass both, so that they never
    /// touch the real home folder.
    public static func locate(
        environment: [String: String] = ProcessInfo.processInfo.environment, home: String? = nil
    ) throws(IdentityFileError) -> ConfigFolder {
        if let configHome = environment["XDG_CONFIG_HOME"], configHome.hasPrefix("/") {
            return ConfigFolder(path: PrivateFile.join(configHome, Self.name))
        }
        guard let home = home ?? environment["HOME"].flatMap({ $0.isEmpty ? nil : $0 }) ?? Self.homeFromUserDatabase() else {
            throw IdentityFileError(
                .unavailable, path: "~/.config/\(Self.name)",
                "cannot find your config folder: neither XDG_CONFIG_HOME nor HOME is set and your user has no home folder; set XDG_CONFIG_HOME to a folder of yours (or give the file to use)"
            )
        }
        return ConfigFolder(path: PrivateFile.join(PrivateFile.join(home, ".config"), Self.name))
    }

    /// Creates the folder, and any missing folder above it, with mode `0700`. An existing
    /// folder is kept as it is, unless other users can change it: whoever can write to it
    /// can put their own key in place of yours, so it is refused with the `chmod` that fixes it.
    public func create() throws(IdentityFileError) {
        do {
            try PrivateFile.makeFolders(self.path)
        } catch {
            throw IdentityFileError(
                .unavailable, path: self.path, "\(error.sentence); check that you may create it, or set XDG_CONFIG_HOME to a folder of yours")
        }
        let mode: mode_t?
        do {
            mode = try PrivateFile.mode(self.path)
        } catch {
            throw IdentityFileError(.unavailable, path: self.path, "\(error.sentence)")
        }
        if let mode, mode & 0o022 != 0 {
            throw IdentityFileError(
                .exposed, path: self.path,
                "your config folder \(self.path) can be changed by other users (mode \(PrivateFile.octal(mode))), who could replace your keys and pins in it; "
                    + "make it private: chmod 700 \(PrivateFile.quoted(self.path))"
            )
        }
    }

    /// The engineer's identity key: `<folder>/engineer.key`.
    public var engineerKeyPath: String { PrivateFile.join(self.path, "engineer.key") }

    /// An enrolled host's identity key: `<folder>/host-<id>.key` (``hostKeyFileName(hostID:)``).
    public func hostKeyPath(hostID: String) -> String { PrivateFile.join(self.path, Self.hostKeyFileName(hostID: hostID)) }

    /// The viewer's pins of host keys: `<folder>/known_hosts`.
    public var knownHostsPath: String { PrivateFile.join(self.path, "known_hosts") }

    /// The pins in ``knownHostsPath``.
    public var knownHosts: KnownHosts { KnownHosts(path: self.knownHostsPath) }

    /// Creates the folder if needed, then loads the engineer's key, or creates it.
    public func engineerKey() throws(IdentityFileError) -> (key: Curve25519.Signing.PrivateKey, created: Bool) {
        try self.create()
        return try IdentityKeyFile.loadOrCreate(at: self.engineerKeyPath)
    }

    /// Creates the folder if needed, then loads an enrolled host's key, or creates it.
    public func hostKey(hostID: String) throws(IdentityFileError) -> (key: Curve25519.Signing.PrivateKey, created: Bool) {
        try self.create()
        return try IdentityKeyFile.loadOrCreate(at: self.hostKeyPath(hostID: hostID))
    }

    /// `host-<id>.key`, with the id made safe as a file name: every character but
    /// `A-Z a-z 0-9 . _ -` becomes `_`. An id that had to be changed that way, an empty
    /// one and one longer than 100 characters also get `-` and 16 hex digits of the
    /// SHA-256 of the id, so that two different ids never share a key file.
    public static func hostKeyFileName(hostID: String) -> String {
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
        let safe = String(hostID.map { allowed.contains($0) ? $0 : "_" })
        guard safe != hostID || hostID.isEmpty || hostID.count > 100 else { return "host-\(hostID).key" }
        let digest = SHA256.hash(data: Data(hostID.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
        return "host-\(safe.prefix(100))-\(digest).key"
    }

    private static func homeFromUserDatabase() -> String? {
        guard let entry = getpwuid(getuid()), let directory = entry.pointee.pw_dir else { return nil }
        let home = String(cString: directory)
        return home.isEmpty ? nil : home
    }
}
