import Foundation
import RelayStore
import RelayTestSupport
import Testing

/// Issue 10 item 12 (store part): `DataFolder` makes the data folder private whatever it
/// was before (OPERATIONS.md "Data folder"). The relay's use of it (opening the store, the
/// key file, `serve`) is tested in RelayServerTests.
@Suite struct DataFolderTests {
    static func withFolder<T>(_ body: (String) throws -> T) throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("data-folder-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    @Test func aLaxFolderIsMadePrivateAndTheChangesAreListed() throws {
        try Self.withFolder { data in
            try FileManager.default.createDirectory(atPath: data + "/tls", withIntermediateDirectories: true)
            try FileModes.set(data, 0o755)
            try FileModes.set(data + "/tls", 0o775)
            try FileModes.write(data + "/relay.sqlite", mode: 0o644)
            try FileModes.write(data + "/relay.sqlite-wal", mode: 0o664)
            try FileModes.write(data + "/tls/relay-key.pem", mode: 0o644)
            try FileModes.write(data + "/tls/relay-cert.pem", mode: 0o604)
            try FileModes.write(data + "/read-only", mode: 0o400)
            try FileManager.default.createSymbolicLink(atPath: data + "/link", withDestinationPath: "/etc/hostname")
            let hostnameMode = try FileModes.mode("/etc/hostname")

            let changes = try DataFolder.makePrivate(data)
            #expect(try FileModes.mode(data) == 0o700)
            #expect(try FileModes.mode(data + "/tls") == 0o700)
            for file in ["relay.sqlite", "relay.sqlite-wal", "tls/relay-key.pem", "tls/relay-cert.pem"] {
                #expect(try FileModes.mode(data + "/" + file) == 0o600, "\(file)")
            }
            #expect(try FileModes.mode(data + "/read-only") == 0o400)  // already private: left alone
            #expect(try FileModes.mode("/etc/hostname") == hostnameMode)  // links are not followed
            #expect(changes.count == 6)
            #expect(changes.contains { $0.description == "\(data)/relay.sqlite 0644 → 0600" })
            #expect(try DataFolder.makePrivate(data).isEmpty)  // nothing left to change
        }
    }
}
