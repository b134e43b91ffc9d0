import Crypto
import Foundation
import Testing

@testable import RelayStore

/// Engineers and hosts log in with Ed25519 keys, and the store keeps public keys only
/// (issue 12 item 4); tokens and secrets from before keys keep working until the account
/// is given a key. Keys are made here, at test time: no private key is committed.
@Suite struct AccountKeyTests {
    static func withStore<T>(_ body: (SQLStore) throws -> T) throws -> T {
        let directory = Self.temporaryFolder("account-keys")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try body(try SQLStore(dataDirectory: directory))
    }

    static func temporaryFolder(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path
    }

    static func newKey() -> Curve25519.Signing.PublicKey { Curve25519.Signing.PrivateKey().publicKey }

    /// The message of the ``StoreError`` `body` throws, with its kind; nil if it throws nothing.
    static func storeError<T>(_ body: () throws -> T) -> StoreError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error as? StoreError
        }
    }

    static func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }

    /// RFC 8032 §7.1 test 1's public key and its fingerprint as RelayWire's KeyFingerprint
    /// writes it (Tests/RelayClientTests/KeyFingerprintTests.swift): the store's own
    /// fingerprint must read the same.
    @Test func theFingerprintIsWrittenAsPeopleCompareIt() throws {
        let raw = Data(
            [
                0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
                0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
            ])
        #expect(AccountKey.fingerprint(rawPublicKey: raw) == "SHA256:If4x36FUomFia/hUBG/SJxt77UtqvkWqWId+9H+XIbk")
        let host = EnrolledHost(id: "ho-1", companyID: "co-1", name: "PC", secretDigest: Data(), publicKey: raw, createdAt: Date())
        #expect(host.loginMethod == .key(fingerprint: "SHA256:If4x36FUomFia/hUBG/SJxt77UtqvkWqWId+9H+XIbk"))
        #expect(host.loginMethod.fingerprint == "SHA256:If4x36FUomFia/hUBG/SJxt77UtqvkWqWId+9H+XIbk")
    }

    @Test func anEngineerAddedWithAKeyLogsInWithThatKeyOnly() throws {
        try Self.withStore { store in
            let (acme, _) = try store.addCompany(name: "Acme Support 주식회사")
            try store.setConfirmSecurityCode(companyID: acme.id, required: true, actor: "cli")
            let key = Self.newKey()
            let fingerprint = AccountKey.fingerprint(rawPublicKey: key.rawRepresentation)
            let added = try store.addEngineer(companyID: acme.id, login: "kim.minji", publicKey: key)
            #expect(added.publicKey == key.rawRepresentation && added.tokenDigest.isEmpty)
            #expect(added.loginMethod == .key(fingerprint: fingerprint))
            #expect(added.companyName == "Acme Support 주식회사" && added.confirmSecurityCode)

            let engineer = try #require(try store.authenticateEngineer(publicKey: key.rawRepresentation))
            #expect(engineer.id == added.id && engineer.login == "kim.minji")
            #expect(engineer.companyName == "Acme Support 주식회사" && engineer.confirmSecurityCode)
            #expect(try store.authenticateEngineer(publicKey: Self.newKey().rawRepresentation) == nil)
            #expect(try store.authenticateEngineer(publicKey: key.rawRepresentation.dropLast()) == nil)
            #expect(try store.authenticateEngineer(publicKey: Data()) == nil)
            // No token logs in as a key account, whatever follows its id.
            #expect(try store.authenticateEngineer(token: "\(added.id).x") == nil)
            #expect(try store.authenticateEngineer(token: "\(added.id).\(Secrets.makeSecret())") == nil)

            let entry = try #require(try store.auditLog(limit: 1).first)
            #expect(entry.action == .engineerAdd && entry.subject == added.id && entry.detail == "key=\(fingerprint)")
            #expect(try store.credentialDigests(engineerIDs: [added.id], hostIDs: []) == [added.id: key.rawRepresentation])
            #expect(try store.tokenAccountCounts() == (0, 0))
        }
    }

    /// The migration path: a token engineer is given a key; the token stops working, the
    /// key works, and the digest the relay compares changes, so it ends the token's sessions.
    @Test func settingAKeyEndsALegacyEngineersToken() throws {
        try Self.withStore { store in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (legacy, token) = try store.addEngineer(companyID: acme.id, login: "lee")
            #expect(legacy.loginMethod == .token && legacy.publicKey == nil)
            #expect(try store.authenticateEngineer(token: token)?.id == legacy.id)
            #expect(try store.tokenAccountCounts() == (1, 0))
            let before = try store.credentialDigests(engineerIDs: [legacy.id], hostIDs: [])
            #expect(before == [legacy.id: legacy.tokenDigest])

            let key = Self.newKey()
            let changed = try store.setEngineerKey(id: legacy.id, publicKey: key)
            #expect(changed.id == legacy.id && changed.login == "lee" && changed.companyName == "Acme")
            #expect(changed.tokenDigest.isEmpty && changed.publicKey == key.rawRepresentation)
            #expect(try store.authenticateEngineer(token: token) == nil)
            #expect(try store.authenticateEngineer(publicKey: key.rawRepresentation)?.id == legacy.id)
            let after = try store.credentialDigests(engineerIDs: [legacy.id], hostIDs: [])
            #expect(after == [legacy.id: key.rawRepresentation] && after != before)
            #expect(try store.tokenAccountCounts() == (0, 0))
            let fingerprint = AccountKey.fingerprint(rawPublicKey: key.rawRepresentation)
            var entry = try #require(try store.auditLog(limit: 1).first)
            #expect(entry.action == .engineerSetKey && entry.subject == legacy.id && entry.companyID == acme.id)
            #expect(entry.detail == "key=\(fingerprint) replaced=token")

            // A new key replaces the older one the same way.
            let newer = Self.newKey()
            _ = try store.setEngineerKey(id: legacy.id, publicKey: newer)
            #expect(try store.authenticateEngineer(publicKey: key.rawRepresentation) == nil)
            #expect(try store.authenticateEngineer(publicKey: newer.rawRepresentation)?.id == legacy.id)
            entry = try #require(try store.auditLog(limit: 1).first)
            #expect(entry.detail == "key=\(AccountKey.fingerprint(rawPublicKey: newer.rawRepresentation)) replaced=\(fingerprint)")
        }
    }

    /// Each engineer and each host has a key of its own: one that another has is refused,
    /// with what to do; setting an account's own key again is not a conflict.
    @Test func aKeyAnotherAccountHasIsRefused() throws {
        try Self.withStore { store in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (other, _) = try store.addCompany(name: "Other")
            let key = Self.newKey()
            let fingerprint = AccountKey.fingerprint(rawPublicKey: key.rawRepresentation)
            let kim = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: key)
            let taken = try #require(Self.storeError { try store.addEngineer(companyID: other.id, login: "park", publicKey: key) })
            #expect(taken.kind == .conflict)
            #expect(taken.message.contains("the public key \(fingerprint) is already the login key of engineer \(kim.id)"))
            #expect(taken.message.contains("each engineer needs a key of their own") && taken.message.contains("relay-agent keygen"))
            #expect(try store.engineers(companyID: other.id).isEmpty, "the refused engineer is not added")

            let (lee, _) = try store.addEngineer(companyID: acme.id, login: "lee")
            #expect(Self.storeError { try store.setEngineerKey(id: lee.id, publicKey: key) }?.kind == .conflict)
            #expect(try store.authenticateEngineer(publicKey: key.rawRepresentation)?.id == kim.id)
            _ = try store.setEngineerKey(id: kim.id, publicKey: key)
            #expect(Self.storeError { try store.setEngineerKey(id: "en-nosuch", publicKey: Self.newKey()) }?.kind == .notFound)

            let hostKey = Self.newKey()
            let pc = try store.enrollHost(companyID: acme.id, name: "PC-01", publicKey: hostKey)
            let hostTaken = try #require(Self.storeError { try store.enrollHost(companyID: acme.id, name: "PC-02", publicKey: hostKey) })
            #expect(hostTaken.kind == .conflict)
            #expect(hostTaken.message.contains("is already the login key of host \(pc.id)") && hostTaken.message.contains("relay-agent keygen --host-id"))
            let spare = try store.enrollHost(companyID: acme.id, name: "PC-03", publicKey: nil)
            #expect(Self.storeError { try store.setHostKey(id: spare.id, publicKey: hostKey) }?.kind == .conflict)
            #expect(try store.hosts(companyID: acme.id).map(\.name) == ["PC-01", "PC-03"])
        }
    }

    /// A host enrolled without a key logs in with nothing until set-key gives it one; then
    /// with that key, and only under its own id.
    @Test func aHostWithoutAKeyCannotLogInUntilItHasOne() throws {
        try Self.withStore { store in
            let (acme, _) = try store.addCompany(name: "Acme")
            let host = try store.enrollHost(companyID: acme.id, name: "회계팀 PC-03", publicKey: nil)
            #expect(host.loginMethod == .noKey && host.secretDigest.isEmpty && host.publicKey == nil)
            #expect(try store.authenticateHost(id: host.id, secret: "") == nil)
            #expect(try store.authenticateHost(id: host.id, secret: Secrets.makeSecret()) == nil)
            let key = Self.newKey()
            #expect(try store.authenticateHost(id: host.id, publicKey: key.rawRepresentation) == nil)
            #expect(try store.authenticateHost(id: host.id, publicKey: Data()) == nil)
            #expect(try store.tokenAccountCounts() == (0, 0), "a host without a key has no token either")
            #expect(try store.auditLog(limit: 1).first?.detail == "key=none")

            let changed = try store.setHostKey(id: host.id, publicKey: key)
            #expect(changed.loginMethod == .key(fingerprint: AccountKey.fingerprint(rawPublicKey: key.rawRepresentation)))
            #expect(try store.authenticateHost(id: host.id, publicKey: key.rawRepresentation)?.name == "회계팀 PC-03")
            #expect(try store.authenticateHost(id: host.id, publicKey: Self.newKey().rawRepresentation) == nil)
            #expect(try store.authenticateHost(id: host.id, secret: "") == nil)
            let other = try store.enrollHost(companyID: acme.id, name: "PC-04", publicKey: Self.newKey())
            #expect(try store.authenticateHost(id: other.id, publicKey: key.rawRepresentation) == nil, "the key logs in as its own host only")
            #expect(try store.credentialDigests(engineerIDs: [], hostIDs: [host.id]) == [host.id: key.rawRepresentation])
            let entry = try #require(try store.auditLog(limit: 2).last)
            #expect(entry.action == .hostSetKey && entry.subject == host.id)
            #expect(entry.detail == "key=\(AccountKey.fingerprint(rawPublicKey: key.rawRepresentation)) replaced=none")
        }
    }

    @Test func settingAKeyEndsALegacyHostsSecret() throws {
        try Self.withStore { store in
            let (acme, _) = try store.addCompany(name: "Acme")
            let (host, secret) = try store.enrollHost(companyID: acme.id, name: "PC")
            #expect(host.loginMethod == .token)
            #expect(try store.authenticateHost(id: host.id, secret: secret)?.id == host.id)
            #expect(try store.tokenAccountCounts() == (0, 1))
            let key = Self.newKey()
            _ = try store.setHostKey(id: host.id, publicKey: key)
            #expect(try store.authenticateHost(id: host.id, secret: secret) == nil)
            #expect(try store.authenticateHost(id: host.id, publicKey: key.rawRepresentation)?.id == host.id)
            #expect(try store.credentialDigests(engineerIDs: [], hostIDs: [host.id]) == [host.id: key.rawRepresentation])
            #expect(try store.tokenAccountCounts() == (0, 0))
            #expect(try store.auditLog(limit: 1).first?.detail?.hasSuffix(" replaced=token") == true)
        }
    }

    /// A relay's file from before keys (schema v3) opens with v4, and its token accounts
    /// keep working until they are given keys.
    @Test func aVersion3FileKeepsItsTokenAccounts() throws {
        let folder = Self.temporaryFolder("account-keys-v3")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/relay.sqlite"
        let (token, secret) = (Secrets.makeSecret(), Secrets.makeSecret())
        try SQLStore.makeFile(
            path: path, migratedUpTo: "v3 company policy",
            then: """
                INSERT INTO company (id, name, adminTokenDigest, createdAt) VALUES ('co-old', 'Old Co', X'00', '2026-01-01 00:00:00.000');
                INSERT INTO engineer (id, companyID, login, tokenDigest, createdAt)
                    VALUES ('en-old', 'co-old', 'kim', X'\(Self.hex(Secrets.digest(token)))', '2026-01-01 00:00:00.000');
                INSERT INTO host (id, companyID, name, secretDigest, createdAt)
                    VALUES ('ho-old', 'co-old', 'PC', X'\(Self.hex(Secrets.digest(secret)))', '2026-01-01 00:00:00.000');
                """)
        let store = try SQLStore(path: path)
        #expect(
            try store.appliedMigrations() == [
                "v1 accounts", "v2 usage", "v3 company policy", "v4 account keys", "v5 web sign-in", "v6 browser viewer", "v7 admin console",
                "v8 usage console indexes", "v9 cluster",
            ])
        let engineer = try #require(try store.authenticateEngineer(token: "en-old.\(token)"))
        #expect(engineer.companyName == "Old Co" && engineer.loginMethod == .token && engineer.publicKey == nil)
        #expect(try store.authenticateHost(id: "ho-old", secret: secret)?.loginMethod == .token)
        #expect(try store.tokenAccountCounts() == (1, 1))
        #expect(try store.engineers(companyID: nil).map(\.loginMethod) == [.token])

        let key = Self.newKey()
        _ = try store.setEngineerKey(id: "en-old", publicKey: key)
        #expect(try store.authenticateEngineer(token: "en-old.\(token)") == nil)
        #expect(try store.authenticateEngineer(publicKey: key.rawRepresentation)?.id == "en-old")
        #expect(try store.tokenAccountCounts() == (0, 1))
    }

    /// A row with a key and a token digest both (which no method of this version writes,
    /// but another version or a hand edit might) logs in by key only: the token paths check
    /// for a key, not only the digest.
    @Test func anAccountWithAKeyNeverLogsInByToken() throws {
        let folder = Self.temporaryFolder("account-keys-both")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/relay.sqlite"
        let (token, secret) = (Secrets.makeSecret(), Secrets.makeSecret())
        let (engineerKey, hostKey) = (Self.newKey(), Self.newKey())
        try SQLStore.makeFile(
            path: path, migratedUpTo: "v4 account keys",
            then: """
                INSERT INTO company (id, name, adminTokenDigest, createdAt) VALUES ('co-1', 'Co', X'00', '2026-01-01 00:00:00.000');
                INSERT INTO engineer (id, companyID, login, tokenDigest, createdAt, publicKey)
                    VALUES ('en-1', 'co-1', 'kim', X'\(Self.hex(Secrets.digest(token)))', '2026-01-01 00:00:00.000',
                            X'\(Self.hex(engineerKey.rawRepresentation))');
                INSERT INTO host (id, companyID, name, secretDigest, createdAt, publicKey)
                    VALUES ('ho-1', 'co-1', 'PC', X'\(Self.hex(Secrets.digest(secret)))', '2026-01-01 00:00:00.000',
                            X'\(Self.hex(hostKey.rawRepresentation))');
                """)
        let store = try SQLStore(path: path)
        #expect(try store.authenticateEngineer(token: "en-1.\(token)") == nil)
        #expect(try store.authenticateHost(id: "ho-1", secret: secret) == nil)
        #expect(try store.authenticateEngineer(publicKey: engineerKey.rawRepresentation)?.id == "en-1")
        #expect(try store.authenticateHost(id: "ho-1", publicKey: hostKey.rawRepresentation)?.id == "ho-1")
        #expect(try store.tokenAccountCounts() == (0, 0))
        #expect(
            try store.credentialDigests(engineerIDs: ["en-1"], hostIDs: ["ho-1"]) == ["en-1": engineerKey.rawRepresentation, "ho-1": hostKey.rawRepresentation])
    }

    /// A store of key accounts holds their public keys and no secret that logs in: the
    /// digest columns are empty, so a copy of the file has nothing to replay.
    @Test func aKeyOnlyStoreHoldsNoSecret() throws {
        let folder = Self.temporaryFolder("account-keys-file")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try SQLStore(dataDirectory: folder)
        let (acme, _) = try store.addCompany(name: "Acme")
        let (engineerKey, hostKey) = (Self.newKey(), Self.newKey())
        _ = try store.addEngineer(companyID: acme.id, login: "kim", publicKey: engineerKey)
        _ = try store.enrollHost(companyID: acme.id, name: "PC", publicKey: hostKey)
        _ = try store.enrollHost(companyID: acme.id, name: "PC without a key", publicKey: nil)

        #expect(try store.engineers(companyID: nil).allSatisfy { $0.tokenDigest.isEmpty })
        #expect(try store.hosts(companyID: nil).allSatisfy { $0.secretDigest.isEmpty })
        #expect(try store.tokenAccountCounts() == (0, 0))
        // The public keys are what the files hold (the database file, or its write-ahead log).
        var bytes = Data()
        for suffix in ["", "-wal"] { bytes += (try? Data(contentsOf: URL(fileURLWithPath: store.location + suffix))) ?? Data() }
        #expect(bytes.range(of: engineerKey.rawRepresentation) != nil)
        #expect(bytes.range(of: hostKey.rawRepresentation) != nil)
    }
}
