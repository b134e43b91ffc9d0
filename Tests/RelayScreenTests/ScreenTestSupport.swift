import Foundation
import RelayScreen
import Synchronization

/// A clock the test moves by hand, so which frame a paced source shows is deterministic.
final class ManualClock: Sendable {
    private let time = Mutex<Duration>(.zero)

    var screenClock: ScreenClock {
        ScreenClock { self.time.withLock { $0 } }
    }

    func advance(by duration: Duration) {
        self.time.withLock { $0 += duration }
    }

    func set(_ duration: Duration) {
        self.time.withLock { $0 = duration }
    }
}

/// A fresh folder under the system's temporary folder, removed by `remove()`.
struct TemporaryFolder {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("relay-screen-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        self.path = url.path
    }

    func file(_ name: String) -> String { self.path + "/" + name }

    func write(_ bytes: [UInt8], to name: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: self.file(name)))
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: self.path)
    }
}

enum FileManagerListing {
    static func names(in folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder)
    }
}
