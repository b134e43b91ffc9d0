import Crypto
import Foundation
import RelayClient
import RelayWire
import Testing

/// Found by an outside review of issue 12: SECURITY.md §6.4 promises that the engineer list is read so that "a
/// typo neither locks everyone out nor lets anyone in silently".
@Suite struct AuthorizedEngineersLineEndTests {
    /// AuthorizedEngineers.load splits a Swift String on the Character "\n"; "\r\n" is one
    /// Character, so a list saved with Windows line ends is one line. With a comment first,
    /// the whole list is a comment: no key is loaded, every engineer is refused, and the
    /// host starts without an error ("Only the 0 engineer key(s) … are let in").
    @Test func aListWithWindowsLineEndsLoadsEveryKey() throws {
        let kim = Curve25519.Signing.PrivateKey().publicKey
        let lee = Curve25519.Signing.PrivateKey().publicKey
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("engineers-review-\(UUID().uuidString)").path
        try "# ACME support team\r\ned25519 \(KeyFingerprint.base64(kim)) kim.minji\r\ned25519 \(KeyFingerprint.base64(lee)) lee.jiwoo\r\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let list = try AuthorizedEngineers.load(from: path)
        #expect(list.entries.count == 2, "loaded \(list.entries.count) of 2 keys")
        #expect(list.entry(for: kim) != nil, "kim.minji is locked out")
        #expect(list.entry(for: lee) != nil, "lee.jiwoo is locked out")
    }

    /// Without the comment line: only the first key counts, the second engineer is silently
    /// locked out (the rest of the file became the first key's comment).
    @Test func aWindowsListWithoutCommentsLoadsEveryKey() throws {
        let kim = Curve25519.Signing.PrivateKey().publicKey
        let lee = Curve25519.Signing.PrivateKey().publicKey
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("engineers-review-\(UUID().uuidString)").path
        try "ed25519 \(KeyFingerprint.base64(kim)) kim.minji\r\ned25519 \(KeyFingerprint.base64(lee)) lee.jiwoo\r\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let list = try AuthorizedEngineers.load(from: path)
        #expect(list.entry(for: lee) != nil, "lee.jiwoo is locked out; kim's comment is \(String(reflecting: list.entry(for: kim)?.comment))")
    }
}
