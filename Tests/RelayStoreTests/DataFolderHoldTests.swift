import Foundation
import RelayStore
import Testing

/// `DataFolder.hold`: relays that run on a data folder's SQLite file share it, and
/// `store migrate` takes it alone, so that neither starts while the other runs (outside
/// test 15, F13). `flock` locks belong to an open folder, so one process can play both.
@Suite struct DataFolderHoldTests {
    @Test func aMigrationAndARelayExcludeEachOther() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hold-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }

        var relay = DataFolder.hold(folder, for: .relay)
        var second = DataFolder.hold(folder, for: .relay)
        #expect(relay != nil && second != nil)
        #expect(DataFolder.hold(folder, for: .migration) == nil)
        relay = nil
        #expect(DataFolder.hold(folder, for: .migration) == nil)
        second = nil

        var migration = DataFolder.hold(folder, for: .migration)
        #expect(migration != nil)
        #expect(DataFolder.hold(folder, for: .relay) == nil)
        #expect(DataFolder.hold(folder, for: .migration) == nil)
        migration = nil
        #expect(DataFolder.hold(folder, for: .relay) != nil)
        _ = (relay, second, migration)
    }
}
