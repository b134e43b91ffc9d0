import Crypto
import Foundation
import RelayClient
import RelayWire
import Testing

@Suite struct AuthorizedEngineersTests {
    static func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("engineers-\(UUID().uuidString)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func listedKeysAreFoundAndOthersAreNot() throws {
        let kim = Curve25519.Signing.PrivateKey().publicKey
        let lee = Curve25519.Signing.PrivateKey().publicKey
        let path = try Self.write("# ACME support\n\ned25519 \(KeyFingerprint.base64(kim)) kim.minji (laptop)\n\t ed25519\t\(KeyFingerprint.base64(lee))\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let list = try AuthorizedEngineers.load(from: path)
        #expect(list.entries.count == 2)
        #expect(list.entry(for: kim)?.comment == "kim.minji (laptop)")
        #expect(list.entry(for: lee)?.comment == "")
        #expect(list.entry(for: Curve25519.Signing.PrivateKey().publicKey) == nil)
    }

    @Test(arguments: ["ed25519", "rsa AAAA kim", "ed25519 not-base64 kim", "ed25519 \(Data(count: 31).base64EncodedString()) short"])
    func aLineThatIsNotAKeyIsAnErrorNamingIt(line: String) throws {
        let path = try Self.write("# ok\n\(line)\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: IdentityFileError.self) { _ = try AuthorizedEngineers.load(from: path) }
        #expect(error?.description.contains("line 2") == true && error?.description.contains(path) == true)
    }

    @Test func aMissingFileSaysWhatToGive() {
        let error = #expect(throws: IdentityFileError.self) { _ = try AuthorizedEngineers.load(from: "/nonexistent/engineers") }
        #expect(error?.description.contains("ed25519 KEY name") == true)
    }
}
