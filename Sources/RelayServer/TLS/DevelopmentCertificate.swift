import Crypto
import Foundation
import NIOSSL
import RelayStore
import X509

/// The self-signed certificate a relay makes for itself when the operator gives none
/// (OPERATIONS.md "Certificates", choice A): `DATA/tls/relay-cert.pem` and `relay-key.pem`.
///
/// - Valid 90 days; renewed when less than 30 remain, at start and by the running relay
///   (``renewIfDue(now:)``). A renewal keeps the key and changes the certificate, so its
///   fingerprint changes: agents that pin it need the new one, which the relay logs loudly.
/// - Names: `localhost` only, unless names are asked for (`--certificate-name`,
///   `certificate_names`). The machine's name is not put in by default: anyone who
///   connects could read it.
/// - Files end with a newline and are `0600`.
struct DevelopmentCertificate: Sendable, Hashable {
    static let validityDays = 90
    static let renewalDays = 30
    static let defaultNames = ["localhost"]
    static let commonName = "SupportRelay development relay"

    /// `DATA/tls`.
    let folder: String
    /// The DNS names the certificate is for.
    let names: [String]
    /// Whether ``names`` were asked for; a certificate with other names is then renewed at once.
    let namesAsked: Bool

    var certificatePath: String { self.folder + "/relay-cert.pem" }
    var keyPath: String { self.folder + "/relay-key.pem" }

    /// The certificate of `dataDirectory`, for `names` (the default when empty).
    init(dataDirectory: String, names: [String] = []) {
        self.folder = URL(fileURLWithPath: dataDirectory).appendingPathComponent("tls").path
        self.names = names.isEmpty ? Self.defaultNames : names
        self.namesAsked = !names.isEmpty
    }

    // MARK: What to do, from the certificate's dates and names

    enum Decision: Equatable {
        case keep
        /// Kept, but the operator should know (an older relay's certificate).
        case keepWithWarning(String)
        case renew(reason: String)
    }

    /// What to do at `now` with a certificate valid from `notBefore` to `notAfter` for `names`.
    static func decision(notBefore: Date, notAfter: Date, names: [String], wanted: [String], namesAsked: Bool, now: Date) -> Decision {
        let day = 86_400.0
        let end = Self.date(notAfter)
        if notAfter <= now { return .renew(reason: "it expired on \(end)") }
        if notAfter.timeIntervalSince(now) < Double(Self.renewalDays) * day {
            return .renew(reason: "it expires on \(end), in less than \(Self.renewalDays) days")
        }
        let replaceNow = "to replace it now, delete its certificate file (the key is kept) and restart"
        if Set(names) != Set(wanted) {
            let has = names.joined(separator: ", ")
            let want = wanted.joined(separator: ", ")
            if namesAsked { return .renew(reason: "it is for \(has), and \(want) was asked for") }
            return .keepWithWarning(
                "the self-signed certificate is for \(has); new ones are for \(want) only (add names with --certificate-name). "
                    + "It is replaced \(Self.renewalDays) days before it expires on \(end); \(replaceNow)"
            )
        }
        let days = Int((notAfter.timeIntervalSince(notBefore) / day).rounded())
        if days > Self.validityDays + 1 {
            return .keepWithWarning(
                "the self-signed certificate is valid for \(days) days (made by an older relay); new ones are valid \(Self.validityDays) days "
                    + "and renewed automatically. It is replaced \(Self.renewalDays) days before it expires on \(end); \(replaceNow)"
            )
        }
        return .keep
    }

    private static func date(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        return formatter.string(from: date)
    }

    // MARK: Files

    enum Outcome: Equatable {
        case loaded
        case created
        /// Made anew (same key): agents pinning `previousFingerprint` need the new one.
        case renewed(previousFingerprint: String, reason: String)
    }

    /// Loads the certificate at start: makes it on first run, renews it when due.
    /// `warning` is something the operator should read (see ``Decision/keepWithWarning(_:)``).
    func loadOrRenew(now: Date = Date()) throws -> (tls: RelayTLS, outcome: Outcome, warning: String?) {
        switch try self.check(now: now) {
        case .missing:
            return (try self.issue(key: self.existingKey(), now: now), .created, nil)
        case .decided(.keep, _):
            return (try self.load(), .loaded, nil)
        case .decided(.keepWithWarning(let warning), _):
            return (try self.load(), .loaded, warning)
        case .decided(.renew(let reason), let previous):
            return (try self.issue(key: self.existingKey(), now: now), .renewed(previousFingerprint: previous, reason: reason), nil)
        }
    }

    /// For the running relay: renews the certificate if it is due (or its file is gone),
    /// returning the new material and why; nil if nothing was done.
    func renewIfDue(now: Date = Date()) throws -> (tls: RelayTLS, previousFingerprint: String?, reason: String)? {
        switch try self.check(now: now) {
        case .missing:
            return (try self.issue(key: self.existingKey(), now: now), nil, "its file was missing")
        case .decided(.renew(let reason), let previous):
            return (try self.issue(key: self.existingKey(), now: now), previous, reason)
        case .decided(.keep, _), .decided(.keepWithWarning, _):
            return nil
        }
    }

    private enum Check {
        case missing
        case decided(Decision, fingerprint: String)
    }

    private func check(now: Date) throws -> Check {
        let files = FileManager.default
        guard files.fileExists(atPath: self.certificatePath), files.fileExists(atPath: self.keyPath) else { return .missing }
        let pem: String
        let certificate: Certificate
        do {
            pem = try String(contentsOfFile: self.certificatePath, encoding: .utf8)
            certificate = try Certificate(pemEncoded: pem)
        } catch {
            throw ConfigurationError(
                .file, "cannot read the development certificate \(self.certificatePath): \(error); delete it (the key is kept) and restart to make a new one")
        }
        let names =
            (try? certificate.extensions.subjectAlternativeNames)?.compactMap { name -> String? in
                if case .dnsName(let dns) = name { return dns }
                return nil
            } ?? []
        let decision = Self.decision(
            notBefore: certificate.notValidBefore, notAfter: certificate.notValidAfter, names: names, wanted: self.names, namesAsked: self.namesAsked, now: now
        )
        let fingerprint = (try? NIOSSLCertificate(bytes: Array(pem.utf8), format: .pem).toDERBytes()).map(Fingerprint.sha256(der:)) ?? "unknown"
        return .decided(decision, fingerprint: fingerprint)
    }

    /// The key already in the folder, if it is a P-256 key the relay made; a renewal keeps it.
    private func existingKey() -> P256.Signing.PrivateKey? {
        guard let pem = try? String(contentsOfFile: self.keyPath, encoding: .utf8) else { return nil }
        return try? P256.Signing.PrivateKey(pemRepresentation: pem)
    }

    /// Makes a certificate for `key` (a new key if nil), writes both files (`0600`, each
    /// replaced in one step), and loads them.
    private func issue(key: P256.Signing.PrivateKey?, now: Date) throws -> RelayTLS {
        try FileManager.default.createDirectory(atPath: self.folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let issued = try CertificateFactory.selfSigned(commonName: Self.commonName, dnsNames: self.names, days: Self.validityDays, key: key, now: now)
        if key == nil { try Self.replace(self.keyPath, with: issued.privateKeyPEM) }
        try Self.replace(self.certificatePath, with: try issued.certificatePEM)
        return try self.load()
    }

    private func load() throws -> RelayTLS {
        var tls = try RelayTLS.load(certificatePath: self.certificatePath, keyPath: self.keyPath)
        tls.development = self
        return tls
    }

    /// Writes `text` to a new `0600` file beside `path`, then renames it over `path`: a
    /// reader sees the old file or the new one, never half of one.
    private static func replace(_ path: String, with text: String) throws {
        let temporary = path + ".new"
        try? FileManager.default.removeItem(atPath: temporary)
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ConfigurationError(.file, "cannot write \(temporary); check that the data folder is writable")
        }
        guard rename(temporary, path) == 0 else {
            throw ConfigurationError(.file, "cannot replace \(path): \(String(cString: strerror(errno))); check that the data folder is writable")
        }
    }
}
