import Foundation
import RelayTestSupport

/// A folder of its own for one identity test, removed at the end: the tests never touch
/// the real home or config folder.
final class TemporaryFolder: Sendable {
    let path: String

    init(_ name: String = #function) throws {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        self.path = FileManager.default.temporaryDirectory.appendingPathComponent("identity-\(safe)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: self.path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// `<folder>/name`.
    func file(_ name: String) -> String { self.path + "/" + name }

    /// The names in the folder (or in `sub`), sorted.
    func names(_ sub: String? = nil) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: sub.map { self.file($0) } ?? self.path).sorted()
    }

    deinit { try? FileManager.default.removeItem(atPath: self.path) }
}
