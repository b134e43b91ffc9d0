import Crypto
import Foundation
import RelayClient
import RelayTestSupport
import RelayWire
import Testing

/// The identity key file of an engineer or an enrolled host (docs/SECURITY.md §7):
/// created private, reloaded as it was, refused when others can read it or it is not a key.
@Suite struct IdentityKeyFileTests {
    @Test("a new key file has mode 0600 and the documented format, and reloads to the same key")
    func createdPrivateAndReloaded() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("engineer.key")
        let (key, created) = try IdentityKeyFile.loadOrCreate(at: path)
        #expect(created)
        #expect(try FileModes.mode(path) == 0o600)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text == "supportrelay-ed25519-private-key-v1\n" + key.rawRepresentation.base64EncodedString() + "\n")

        let (again, createdAgain) = try IdentityKeyFile.loadOrCreate(at: path)
        #expect(!createdAgain)
        #expect(again.rawRepresentation == key.rawRepresentation)
        #expect(try IdentityKeyFile.load(at: path).publicKey.rawRepresentation == key.publicKey.rawRepresentation)
        // Only the key is left: the temporary file it was written to is gone.
        #expect(try folder.names() == ["engineer.key"])
    }

    @Test("the file holds the raw key in base64 under the header, and its fingerprint is the public key's")
    func knownKeyFormat() throws {
        // A key made now: no private key is kept in the repository, not even a test one.
        let key = Curve25519.Signing.PrivateKey()
        let folder = try TemporaryFolder()
        let path = folder.file("host-ho_1.key")
        try IdentityKeyFile.write(key, to: path)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3 && lines[0] == "supportrelay-ed25519-private-key-v1" && lines[2].isEmpty)
        #expect(Data(base64Encoded: String(lines[1])) == key.rawRepresentation)
        let digest = Data(SHA256.hash(data: key.publicKey.rawRepresentation)).base64EncodedString().replacingOccurrences(of: "=", with: "")
        #expect(KeyFingerprint.of(try IdentityKeyFile.load(at: path).publicKey) == "SHA256:" + digest)
    }

    @Test("a key file its group or others can read or change is refused, with the chmod that fixes it", arguments: [0o640, 0o644, 0o604, 0o620, 0o660, 0o602])
    func exposedFileRefused(mode: Int) throws {
        let folder = try TemporaryFolder()
        let path = folder.file("engineer.key")
        let key = try IdentityKeyFile.create(at: path)
        try FileModes.set(path, mode)
        let error = #expect(throws: IdentityFileError.self) { try IdentityKeyFile.load(at: path) }
        #expect(error?.kind == .exposed)
        #expect(error?.message.contains("chmod 600 \(path)") == true)
        #expect(error?.message.contains(String(mode, radix: 8)) == true)
        #expect(error?.message.contains(key.rawRepresentation.base64EncodedString()) == false)
        // loadOrCreate refuses it too, and leaves the file alone.
        #expect(throws: IdentityFileError.self) { try IdentityKeyFile.loadOrCreate(at: path) }
        try FileModes.set(path, 0o600)
        #expect(try IdentityKeyFile.load(at: path).rawRepresentation == key.rawRepresentation)
    }

    /// Files that are not a key file, made from a key generated now (no private key is kept
    /// in the repository).
    enum Malformed: CaseIterable, Sendable {
        case empty, newline, keyAlone, noKey, shortKey, twoKeys, notBase64, otherVersion, pemKey

        var text: String {
            let key = Curve25519.Signing.PrivateKey().rawRepresentation.base64EncodedString()
            let header = "supportrelay-ed25519-private-key-v1\n"
            switch self {
            case .empty: return ""
            case .newline: return "\n"
            case .keyAlone: return key + "\n"
            case .noKey: return header
            case .shortKey: return header + String(key.prefix(40)) + "\n"  // 30 bytes
            case .twoKeys: return header + key + "\n" + key + "\n"
            case .notBase64: return header + "not base64 at all!\n"
            case .otherVersion: return "supportrelay-ed25519-private-key-v2\n" + key + "\n"
            // Another program's key file (PEM), as someone might give by mistake.
            case .pemKey: return P256.Signing.PrivateKey().pemRepresentation + "\n"
            }
        }
    }

    @Test("a file that is not a key is refused, naming the file and the expected first line and quoting nothing from it", arguments: Malformed.allCases)
    func malformedFileRefused(kind: Malformed) throws {
        let text = kind.text
        let folder = try TemporaryFolder()
        let path = folder.file("engineer.key")
        try FileModes.write(path, text, mode: 0o600)
        let error = #expect(throws: IdentityFileError.self) { try IdentityKeyFile.load(at: path) }
        #expect(error?.kind == .malformed)
        #expect(error?.path == path)
        #expect(error?.message.contains(path) == true)
        #expect(error?.message.contains("supportrelay-ed25519-private-key-v1") == true)
        for line in text.split(separator: "\n") where line.count > 8 && !line.hasPrefix("supportrelay-") && !line.hasPrefix("-----") {
            #expect(error?.message.contains(line) == false, "the message quotes the file")
        }
        // loadOrCreate never replaces a damaged key with a new one.
        #expect(throws: IdentityFileError.self) { try IdentityKeyFile.loadOrCreate(at: path) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == text)
    }

    @Test("a file with CRLF line ends or surrounding blanks is still read")
    func tolerantLineEnds() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("engineer.key")
        let key = Curve25519.Signing.PrivateKey()
        try FileModes.write(path, "supportrelay-ed25519-private-key-v1\r\n  \(key.rawRepresentation.base64EncodedString())\r\n\n", mode: 0o600)
        #expect(try IdentityKeyFile.load(at: path).rawRepresentation == key.rawRepresentation)
    }

    @Test("create never replaces a file: an existing key stays as it was")
    func createNeverReplaces() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("engineer.key")
        let key = try IdentityKeyFile.create(at: path)
        let error = #expect(throws: IdentityFileError.self) { try IdentityKeyFile.create(at: path) }
        #expect(error?.kind == .alreadyExists)
        #expect(error?.message.contains("never replaced") == true)
        #expect(try IdentityKeyFile.load(at: path).rawRepresentation == key.rawRepresentation)
        #expect(try folder.names() == ["engineer.key"])
    }

    @Test("no file: load says so and how to make one; a missing folder is named with the mkdir that makes it")
    func missingFileAndFolder() throws {
        let folder = try TemporaryFolder()
        let missing = #expect(throws: IdentityFileError.self) { try IdentityKeyFile.load(at: folder.file("engineer.key")) }
        #expect(missing?.kind == .notFound)
        #expect(missing?.message.contains("relay-agent keygen") == true)
        let noFolder = #expect(throws: IdentityFileError.self) { try IdentityKeyFile.loadOrCreate(at: folder.file("nowhere/engineer.key")) }
        #expect(noFolder?.kind == .unavailable)
        #expect(noFolder?.message.contains("mkdir -m 700 \(folder.file("nowhere"))") == true)
    }

    @Test("agents creating the same key at once all end up with the one key that was written first")
    func concurrentCreationYieldsOneKey() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("host-ho_1.key")
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 12) { _ in
            results.add(Result { try IdentityKeyFile.loadOrCreate(at: path) }.map { ($0.key.rawRepresentation, $0.created) })
        }
        let all = try results.all.map { try $0.get() }
        #expect(all.count == 12)
        #expect(all.filter(\.1).count == 1)
        #expect(Set(all.map(\.0)).count == 1)
        #expect(try IdentityKeyFile.load(at: path).rawRepresentation == all[0].0)
        #expect(try folder.names() == ["host-ho_1.key"])
    }

    /// Results from several threads.
    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var results: [Result<(Data, Bool), any Error>] = []
        func add(_ result: Result<(Data, Bool), any Error>) { self.lock.withLock { self.results.append(result) } }
        var all: [Result<(Data, Bool), any Error>] { self.lock.withLock { self.results } }
    }
}
