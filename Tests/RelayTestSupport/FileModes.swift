import Foundation

/// POSIX permission bits of the files a test makes: what the data-folder tests of the
/// store (`DataFolder`) and of the relay (its key file, its renewed certificate) check.
public enum FileModes {
    /// The permission bits of `path` itself (a symbolic link is not followed).
    public static func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    /// Sets the permission bits of `path`.
    public static func set(_ path: String, _ mode: Int) throws {
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    /// Writes `text` to a file at `path` and gives it `mode`.
    public static func write(_ path: String, _ text: String = "x", mode: Int) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try Self.set(path, mode)
    }
}
