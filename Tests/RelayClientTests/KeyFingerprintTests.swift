import Crypto
import Foundation
import RelayClient
import Testing

/// Key fingerprints as OpenSSH writes them (docs/SECURITY.md §6.1).
@Suite struct KeyFingerprintTests {
    /// RFC 8032 §7.1, test 1: the private key and the public key it derives.
    static let rfc8032PrivateKey = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    static let rfc8032PublicKey = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"

    static func bytes(hex: String) -> Data {
        var data = Data()
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            data.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return data
    }

    static var rfc8032Key: Curve25519.Signing.PrivateKey {
        get throws { try Curve25519.Signing.PrivateKey(rawRepresentation: Self.bytes(hex: Self.rfc8032PrivateKey)) }
    }

    @Test("the fingerprint of the RFC 8032 test key is the one openssl computes")
    func fingerprintOfAFixedKey() throws {
        let key = try Self.rfc8032Key.publicKey
        #expect(key.rawRepresentation == Self.bytes(hex: Self.rfc8032PublicKey))
        // Computed outside Swift, from the raw public key that openssl derives:
        //   (printf '302e020100300506032b657004220420'; echo 9d61…7f60) | xxd -r -p > sk.der
        //   openssl pkey -inform DER -in sk.der -pubout -outform DER | tail -c 32 > pk.raw
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
