import Crypto
import Foundation
import RelayClient
import RelayTestSupport
import RelayWire
import Testing

/// Key fingerprints as OpenSSH writes them (docs/SECURITY.md §6.1).
@Suite struct KeyFingerprintTests {
    /// RFC 8032 §7.1, test 1: its public key (a fingerprint needs nothing else).
    static let rfc8032PublicKey = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"

    static func bytes(hex: String) -> Data { Data(RelayTestSupport.bytes(hex: hex)) }

    @Test("the fingerprint of the RFC 8032 test public key is the one openssl computes")
    func fingerprintOfAFixedKey() throws {
        let key = try Curve25519.Signing.PublicKey(rawRepresentation: Self.bytes(hex: Self.rfc8032PublicKey))
        // Computed outside Swift from the raw 32-byte public key (pk.raw):
        //   echo d75a…511a | xxd -r -p > pk.raw
        //   openssl dgst -sha256 -binary pk.raw | openssl base64 -A | tr -d '='
        #expect(KeyFingerprint.of(key) == "SHA256:If4x36FUomFia/hUBG/SJxt77UtqvkWqWId+9H+XIbk")
        #expect(KeyFingerprint.of(rawPublicKey: Self.bytes(hex: Self.rfc8032PublicKey)) == "SHA256:If4x36FUomFia/hUBG/SJxt77UtqvkWqWId+9H+XIbk")
        // base64 < pk.raw
        #expect(KeyFingerprint.base64(key) == "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    }

    @Test("a fingerprint is SHA256: and 43 base64 characters without padding; different keys differ")
    func fingerprintShape() {
        let first = KeyFingerprint.of(Curve25519.Signing.PrivateKey().publicKey)
        let second = KeyFingerprint.of(Curve25519.Signing.PrivateKey().publicKey)
        for fingerprint in [first, second] {
            #expect(fingerprint.hasPrefix("SHA256:"))
            #expect(fingerprint.count == 7 + 43)
            #expect(!fingerprint.contains("="))
        }
        #expect(first != second)
    }
}
