public import Foundation

// Web sign-in (issue 13 item 2): the engineer's password hash, TOTP secret and last step
// live in `engineer` columns that ``Engineer`` does not map (so no list or log carries
// them); recovery codes, sign-in links and web sessions have tables of their own.
extension SQLStore {
    public func engineers(login: String) throws -> [Engineer] {
        try self.reading { db in
            // A disabled engineer cannot sign in: as if there were no such login.
            try Self.withCompanyNames(try Engineer.fetchAll(db, "WHERE login = \(login) AND disabledAt IS NULL ORDER BY companyID"), db)
        }
    }

    public func engineer(id: String) throws -> Engineer {
        try self.reading { db in
            guard let engineer = try Engineer.fetchOne(db, key: id) else { throw Self.noEngineer(id) }
            return try Self.withCompanyNames([engineer], db)[0]
        }
    }

    public func webCredentials(engineerID: String) throws -> WebCredentials {
        try self.reading { db in try Self.credentials(engineerID, db) }
    }

    static func credentials(_ engineerID: String, _ db: any SQLConnection) throws -> WebCredentials {
        let sql: SQL = "SELECT passwordHash, passwordSetAt, totpSecret, totpEnrolledAt, totpLastStep FROM engineer WHERE id = \(engineerID)"
        guard let row = try db.row(sql) else { throw Self.noEngineer(engineerID) }
        let codes = try db.count("SELECT COUNT(*) FROM recovery_code WHERE engineerID = \(engineerID)")
        return WebCredentials(
            engineerID: engineerID, passwordHash: try row[0], passwordSetAt: try row[1], totpSecret: try row[2], totpEnrolledAt: try row[3],
            totpLastStep: try row[4], recoveryCodesLeft: codes)
    }

    static func noEngineer(_ id: String) -> StoreError {
        StoreError(.notFound, "no engineer with id \(id); `relay-server engineer list` shows the ids")
    }

    public func setPassword(engineerID: String, hash: String, actor: String) throws {
        try self.changeEngineer(engineerID, action: .engineerSetPassword, actor: actor) { db in
            try db.execute("UPDATE engineer SET passwordHash = \(hash), passwordSetAt = \(self.now()) WHERE id = \(engineerID)")
            // A new password ends every browser signed in with the old one.
            let ended = try Self.endWebSessions(engineerID, db)
            return "web_sessions_ended=\(ended)"
        }
    }

    public func enrolTwoFactor(engineerID: String, secret: String, acceptedStep: Int64, recoveryCodeDigests: [Data], actor: String) throws {
        try self.changeEngineer(engineerID, action: .engineerEnrolTOTP, actor: actor) { db in
            let now = self.now()
            try db.execute("UPDATE engineer SET totpSecret = \(secret), totpEnrolledAt = \(now), totpLastStep = \(acceptedStep) WHERE id = \(engineerID)")
            try Self.replaceRecoveryCodes(engineerID, digests: recoveryCodeDigests, now: now, db)
            return "recovery_codes=\(Set(recoveryCodeDigests).count)"
        }
    }

    public func acceptTOTPStep(engineerID: String, step: Int64) throws -> Bool {
        try self.writing { db in
            // One statement decides: two sign-ins with the same code cannot both move the step.
            try db.execute(
                """
                UPDATE engineer SET totpLastStep = \(step) WHERE id = \(engineerID) AND totpSecret IS NOT NULL \
                AND (totpLastStep IS NULL OR totpLastStep < \(step))
                """) == 1
        }
    }

    public func useRecoveryCode(engineerID: String, digest: Data) throws -> Bool {
        try self.writing { db in
            guard try db.execute("DELETE FROM recovery_code WHERE engineerID = \(engineerID) AND digest = \(digest)") == 1 else { return false }
            let left = try db.count("SELECT COUNT(*) FROM recovery_code WHERE engineerID = \(engineerID)")
            let companyID = try db.value("SELECT companyID FROM engineer WHERE id = \(engineerID)", as: String.self)
            try AuditEntry(
                at: self.now(), actor: "web", action: .engineerRecoveryCode, companyID: companyID, subject: engineerID, detail: "recovery_codes_left=\(left)"
            ).insert(db)
            return true
        }
    }

    public func resetTwoFactor(engineerID: String, actor: String) throws {
        try self.changeEngineer(engineerID, action: .engineerResetTOTP, actor: actor) { db in
            try db.execute("UPDATE engineer SET totpSecret = NULL, totpEnrolledAt = NULL, totpLastStep = NULL WHERE id = \(engineerID)")
            try Self.replaceRecoveryCodes(engineerID, digests: [], now: self.now(), db)
            let ended = try Self.endWebSessions(engineerID, db)
            return "web_sessions_ended=\(ended)"
        }
    }

    public func issueSignInLink(_ link: SignInLink, actor: String) throws {
        try self.changeEngineer(link.engineerID, action: .engineerSignInLink, actor: actor) { db in
            try Self.refuseDisabled(link.engineerID, db)
            let replaced = try db.execute("DELETE FROM signin_link WHERE engineerID = \(link.engineerID)")
            try link.insert(db)
            return "expires=\(Self.auditTime(link.expiresAt)) replaced=\(replaced)"
        }
    }

    public func useSignInLink(digest: Data) throws -> SignInLink? {
        try self.writing { db in
            guard let link = try SignInLink.fetchOne(db, key: digest) else { return nil }
            try SignInLink.deleteOne(db, key: digest)
            // A disabled engineer's link (from before they were disabled) opens nothing.
            return try Self.isDisabled(link.engineerID, db) ? nil : link
        }
    }

    public func startWebSession(_ session: WebSession) throws {
        try self.writing { db in
            guard try Engineer.exists(db, key: session.engineerID) else { throw Self.noEngineer(session.engineerID) }
            try Self.refuseDisabled(session.engineerID, db)
            try session.insert(db)
        }
    }

    public func webSession(idDigest: Data) throws -> WebSession? {
        try self.reading { db in
            guard let session = try WebSession.fetchOne(db, key: idDigest) else { return nil }
            return try Self.isDisabled(session.engineerID, db) ? nil : session
        }
    }

    /// Whether the engineer is disabled (an unknown one is not).
    static func isDisabled(_ engineerID: String, _ db: any SQLConnection) throws -> Bool {
        try db.value("SELECT disabledAt IS NOT NULL FROM engineer WHERE id = \(engineerID)", as: Bool.self) ?? false
    }

    /// Refuses a sign-in step of a disabled engineer: nothing signs them in until an admin
    /// enables them again.
    static func refuseDisabled(_ engineerID: String, _ db: any SQLConnection) throws {
        guard try Self.isDisabled(engineerID, db) else { return }
        throw StoreError(.conflict, "engineer \(engineerID) is disabled; an admin enables them again in the console (Engineers) first")
    }

    public func touchWebSession(idDigest: Data, at: Date) throws {
        try self.writing { db in
            try db.execute("UPDATE web_session SET lastSeenAt = \(at) WHERE idDigest = \(idDigest)")
        }
    }

    public func endWebSession(idDigest: Data) throws {
        try self.writing { db in try db.execute("DELETE FROM web_session WHERE idDigest = \(idDigest)") }
    }

    public func removeExpiredSignIns(now: Date, idleBefore: Date, startedBefore: Date) throws -> Int {
        try self.writing { db in
            let links = try db.execute("DELETE FROM signin_link WHERE expiresAt <= \(now)")
            return links + (try db.execute("DELETE FROM web_session WHERE lastSeenAt <= \(idleBefore) OR createdAt <= \(startedBefore)"))
        }
    }

    /// One change of an engineer's web credentials in one transaction with its audit
    /// entry (actor, engineer, company; `change` returns the detail, never a secret).
    private func changeEngineer(_ engineerID: String, action: AuditEntry.Action, actor: String, _ change: (any SQLConnection) throws -> String?) throws {
        try self.writing { db in
            guard let companyID = try db.value("SELECT companyID FROM engineer WHERE id = \(engineerID)", as: String.self) else {
                throw Self.noEngineer(engineerID)
            }
            let detail = try change(db)
            try AuditEntry(at: self.now(), actor: actor, action: action, companyID: companyID, subject: engineerID, detail: detail).insert(db)
        }
    }

    private static func replaceRecoveryCodes(_ engineerID: String, digests: [Data], now: Date, _ db: any SQLConnection) throws {
        try db.execute("DELETE FROM recovery_code WHERE engineerID = \(engineerID)")
        for digest in Set(digests) {
            try db.execute("INSERT INTO recovery_code (engineerID, digest, createdAt) VALUES (\(engineerID), \(digest), \(now))")
        }
    }

    private static func endWebSessions(_ engineerID: String, _ db: any SQLConnection) throws -> Int {
        try db.execute("DELETE FROM web_session WHERE engineerID = \(engineerID)")
    }

    /// A time in an audit detail: ISO 8601 UTC, whole seconds.
    private static func auditTime(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
