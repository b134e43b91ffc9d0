import Foundation
import NIOPosix
import RelayStore
import RelayTestSupport
import Testing

@testable import RelayServer

/// Issue 10 item 12 (server part): the data folder is private whatever it was before, and
/// the relay does not start with a private key that other users can read. What
/// `DataFolder` does on its own is tested in RelayStoreTests.
@Suite struct DataFolderTests {
    static func withFolder<T>(_ body: (String) throws -> T) throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("data-folder-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    /// What `serve` and every admin command do: the store's files, `-wal` and `-shm`
    /// included, end up 0600 although the database was 0644 before.
    @Test func openingTheStoreMakesItsFilesPrivate() throws {
        try Self.withFolder { data in
            _ = try SQLStore(dataDirectory: data)  // made without the relay's care
            try FileModes.set(data, 0o755)
            try FileModes.set(data + "/relay.sqlite", 0o644)
            let (store, changes) = try PrivateDataFolder.openStore(data)
            _ = try store.companies()
            #expect(changes.contains { $0.path == data && $0.from == 0o755 })
            #expect(changes.contains { $0.path == data + "/relay.sqlite" && $0.from == 0o644 })
            for name in try FileManager.default.contentsOfDirectory(atPath: data) {
                #expect(try FileModes.mode(data + "/" + name) == 0o600, "\(name)")
            }
            #expect(try FileModes.mode(data) == 0o700)
        }
    }

    @Test func aKeyOthersCanReadIsRefusedWithTheCommandToFixIt() throws {
        try Self.withFolder { folder in
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let issued = try CertificateFactory.selfSigned(commonName: "test", dnsNames: ["localhost"])
            let key = folder + "/key.pem"
            let cert = folder + "/cert.pem"
            try FileModes.write(cert, try issued.certificatePEM, mode: 0o644)
            try FileModes.write(key, issued.privateKeyPEM, mode: 0o644)

            for lax in [0o644, 0o604, 0o660, 0o620] {
                try FileModes.set(key, lax)
                let problem = try #require(DataFolder.keyFileProblem(key))
                #expect(problem.contains("chmod 600 \(key)"))
                let error = #expect(throws: ConfigurationError.self) { try RelayTLS.load(certificatePath: cert, keyPath: key) }
                #expect(error?.kind == .file)
                #expect(error?.description.contains("chmod 600 \(key)") == true)
            }
            for fine in [0o600, 0o400] {
                try FileModes.set(key, fine)
                #expect(DataFolder.keyFileProblem(key) == nil)
                _ = try RelayTLS.load(certificatePath: cert, keyPath: key)
            }
            // A root-owned key its group may read (Debian's ssl-cert): allowed. The tests
            // run as root in CI; as another user the file is not root's, so it is refused.
            try FileModes.set(key, 0o640)
            #expect((DataFolder.keyFileProblem(key) == nil) == (getuid() == 0))
        }
    }

    /// The real `relay-server serve` on a folder left lax: it starts, logs what it changed,
    /// and leaves everything private.
    @Test(.timeLimit(.minutes(2))) func serveMakesALaxDataFolderPrivate() async throws {
        let executable = try CrashRecoveryTests.relayServerExecutable()
        try await Self.withFolderAsync { data in
            let config = FileManager.default.temporaryDirectory.appendingPathComponent("relay-\(UUID().uuidString).json").path
            defer { try? FileManager.default.removeItem(atPath: config) }
            try Data(#"{"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "event_loop_threads": 1}"#.utf8).write(to: URL(fileURLWithPath: config))
            // A first run makes the database and the self-signed certificate; then someone
            // copies the folder without keeping its modes.
            // Starting and stopping a process blocks: off the 2-thread cooperative pool, or the
            // suite's other async tests (TLS handshakes with 10 s deadlines) stall meanwhile.
            try await NIOThreadPool.singleton.runIfActive {
                try CrashRecoveryTests.ServerProcess(executable: executable, dataDirectory: data, configFile: config).kill(SIGTERM)
            }
            try FileModes.set(data, 0o755)
            try FileModes.set(data + "/tls", 0o755)
            for file in ["relay.sqlite", "tls/relay-key.pem", "tls/relay-cert.pem"] { try FileModes.set(data + "/" + file, 0o644) }

            try await NIOThreadPool.singleton.runIfActive {
                try CrashRecoveryTests.ServerProcess(executable: executable, dataDirectory: data, configFile: config).kill(SIGTERM)
            }
            #expect(try FileModes.mode(data) == 0o700)
            #expect(try FileModes.mode(data + "/tls") == 0o700)
            for file in ["relay.sqlite", "tls/relay-key.pem", "tls/relay-cert.pem"] {
                #expect(try FileModes.mode(data + "/" + file) == 0o600, "\(file)")
            }
            for name in try FileManager.default.contentsOfDirectory(atPath: data) where name.hasPrefix("relay.sqlite") {
                #expect(try FileModes.mode(data + "/" + name) == 0o600, "\(name)")
            }
        }
    }

    /// `serve --cert --key` with a world-readable key stops with the chmod to run.
    @Test(.timeLimit(.minutes(2))) func serveRefusesALaxKeyFile() async throws {
        let executable = try CrashRecoveryTests.relayServerExecutable()
        try await Self.withFolderAsync { folder in
            try FileManager.default.createDirectory(atPath: folder + "/tls", withIntermediateDirectories: true)
            let issued = try CertificateFactory.selfSigned(commonName: "test", dnsNames: ["localhost"])
            let key = folder + "/tls/key.pem"
            let cert = folder + "/tls/cert.pem"
            try FileModes.write(cert, try issued.certificatePEM, mode: 0o644)
            try FileModes.write(key, issued.privateKeyPEM, mode: 0o644)
            let (status, message) = try await NIOThreadPool.singleton.runIfActive {
                let process = Process()
                process.executableURL = executable
                process.arguments = [
                    "serve", "--data", folder + "/data", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--cert", cert, "--key", key,
                ]
                let errors = Pipe()
                process.standardError = errors
                process.standardOutput = FileHandle.nullDevice
                try process.run()
                let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                return (process.terminationStatus, message)
            }
            #expect(status != 0)
            #expect(message.contains("chmod 600 \(key)"), "\(message)")
        }
    }

    static func withFolderAsync(_ body: (String) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("data-folder-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await body(path)
    }
}
