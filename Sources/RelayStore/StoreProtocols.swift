public import Crypto
public import Foundation

/// Companies, engineers and enrolled hosts, and the checks of their credentials.
///
/// The embedded implementation is ``SQLStore``; a PostgreSQL one for several relay
/// nodes implements the same protocols (DESIGN.md "Usage history"). Methods block the
/// calling thread: the relay calls them on its thread pool, never on an event loop.
/// `actor` names who made a change, for the audit log (`cli`, `api:<company id>`).
///
/// A company's admin token is a bearer token, and stays one: it is for the admin API
/// only (its digest is stored). Engineers and hosts log in with keys.
public protocol AccountStore: Sendable {
    func addCompany(name: String, actor: String) throws -> (Company, token: String)
    func companies() throws -> [Company]
    func company(id: String) throws -> Company
    func removeCompany(id: String, actor: String) throws
    func rotateCompanyToken(id: String, actor: String) throws -> String
    /// The company whose admin token this is, or nil.
    func authenticateAdmin(token: String) throws -> Company?

    // Engineers and hosts log in with Ed25519 key pairs (issue 12 item 4): the store keeps
    // the public key only, so a copy of it (or a proxy in front of the relay) harvests
    // nothing that logs in. Tokens and secrets issued before keys keep working until the
    // account is given a key; nothing issues new ones.

    /// Adds an engineer whose agent logs in with `publicKey`; the key's fingerprint goes
    /// into the audit entry. A key that another engineer logs in with is refused (each
    /// engineer has a key of their own). Without a key, the engineer works in the browser
    /// only (after the web sign-in link), until ``setEngineerKey(id:publicKey:actor:)``.
    func addEngineer(companyID: String, login: String, publicKey: Curve25519.Signing.PublicKey?, actor: String) throws -> Engineer
    /// Adds an engineer who logs in with a bearer token: the legacy path, which the
    /// command line no longer offers (relay tests and data from before keys use it).
    func addEngineer(companyID: String, login: String, actor: String) throws -> (Engineer, token: String)
    func engineers(companyID: String?) throws -> [Engineer]
    func removeEngineer(id: String, actor: String) throws
    /// Gives an engineer a new login key, replacing a legacy token (which then stops
    /// working: the token digest is emptied) or an older key. The change of
    /// ``Engineer/credentialDigest`` ends the live sessions that logged in with the old one.
    func setEngineerKey(id: String, publicKey: Curve25519.Signing.PublicKey, actor: String) throws -> Engineer
    /// The engineer whose legacy token this is, with ``Engineer/companyName`` filled, or
    /// nil; always nil for an engineer who has a key.
    func authenticateEngineer(token: String) throws -> Engineer?
    /// The engineer who logs in with this raw Ed25519 public key (32 bytes, as the TLS
    /// handshake proved it), with ``Engineer/companyName`` filled, or nil.
    func authenticateEngineer(publicKey: Data) throws -> Engineer?

    /// Enrolls a host that logs in with `publicKey`, or, with nil, one that cannot log in
    /// until ``setHostKey(id:publicKey:actor:)`` gives it a key (its key is usually made
    /// on the host, with the id this returns).
    func enrollHost(companyID: String, name: String, publicKey: Curve25519.Signing.PublicKey?, actor: String) throws -> EnrolledHost
    /// Enrolls a host that logs in with a bearer secret: the legacy path, which the
    /// command line no longer offers (relay tests and data from before keys use it).
    func enrollHost(companyID: String, name: String, actor: String) throws -> (EnrolledHost, secret: String)
    func hosts(companyID: String?) throws -> [EnrolledHost]
    func removeHost(id: String, actor: String) throws
    /// Gives a host a login key, replacing a legacy secret (which then stops working) or
    /// an older key; ends the live sessions that logged in with the old one.
    func setHostKey(id: String, publicKey: Curve25519.Signing.PublicKey, actor: String) throws -> EnrolledHost
    /// The host with this id and legacy secret, or nil; always nil for a host that has a
    /// key or was enrolled without a secret.
    func authenticateHost(id: String, secret: String) throws -> EnrolledHost?
    /// The host with this id whose login key is this raw Ed25519 public key, or nil.
    func authenticateHost(id: String, publicKey: Data) throws -> EnrolledHost?

    /// How many engineers and hosts still log in with a legacy token or secret: what
    /// `relay-server serve` warns about at start.
    func tokenAccountCounts() throws -> (engineers: Int, hosts: Int)

    /// The current ``Engineer/credentialDigest`` or ``EnrolledHost/credentialDigest`` of
    /// each engineer and host id given that still exists. The relay compares them with the
    /// ones its live connections authenticated with, to end the connections of removed
    /// accounts and of accounts whose token, secret or key was replaced.
    func credentialDigests(engineerIDs: [String], hostIDs: [String]) throws -> [String: Data]

    /// Appends access-log entries in one transaction.
    func record(_ events: [AccessEvent]) throws

    // Web sign-in (issue 13 item 2). The store keeps hashes, digests and the TOTP secret;
    // RelaySignIn makes and checks them. Changes are audited without their secrets.

    /// Engineers with this login, in any company (a login is unique within a company).
    func engineers(login: String) throws -> [Engineer]
    /// The engineer with this id, with their company's name; `notFound` for an unknown id.
    func engineer(id: String) throws -> Engineer
    /// The engineer's web credentials; `notFound` for an unknown id.
    func webCredentials(engineerID: String) throws -> WebCredentials
    /// Stores a new password hash and ends the engineer's web sessions.
    func setPassword(engineerID: String, hash: String, actor: String) throws
    /// Completes two-factor enrolment: the secret, the step of the code that confirmed it,
    /// and new recovery codes (digests) replacing any earlier ones.
    func enrolTwoFactor(engineerID: String, secret: String, acceptedStep: Int64, recoveryCodeDigests: [Data], actor: String) throws
    /// Records `step` as the last accepted TOTP step, unless a step at or after it is
    /// already recorded (two sign-ins racing with one code): false then, and the code
    /// must be refused as replayed.
    func acceptTOTPStep(engineerID: String, step: Int64) throws -> Bool
    /// Uses up a recovery code; false when the engineer has no unused code with this digest.
    func useRecoveryCode(engineerID: String, digest: Data) throws -> Bool
    /// Removes the engineer's TOTP secret and recovery codes and ends their web sessions:
    /// the next sign-in enrols again.
    func resetTwoFactor(engineerID: String, actor: String) throws
    /// Stores a new sign-in link for the engineer, replacing any earlier one.
    func issueSignInLink(_ link: SignInLink, actor: String) throws
    /// Takes the link with this token digest out of the store (single use) and returns
    /// it, expired or not: the caller checks the expiry. Nil when there is none.
    func useSignInLink(digest: Data) throws -> SignInLink?
    /// Stores a new web session.
    func startWebSession(_ session: WebSession) throws
    /// The web session with this id digest, or nil.
    func webSession(idDigest: Data) throws -> WebSession?
    /// Records a request of the session at `at` (its idle expiry counts from there).
    func touchWebSession(idDigest: Data, at: Date) throws
    /// Ends one web session (sign-out, expiry).
    func endWebSession(idDigest: Data) throws
    /// Deletes sign-in links expired before `now` and web sessions that no request can
    /// use any more (last used before `idleBefore` or started before `startedBefore`);
    /// returns how many rows went.
    func removeExpiredSignIns(now: Date, idleBefore: Date, startedBefore: Date) throws -> Int
    func accessLog(limit: Int) throws -> [AccessEvent]
    /// Sets ``EnrolledHost/lastSeenAt`` of these hosts (the relay calls it when a host
    /// registers and when it leaves). Unknown ids are ignored.
    func markHostsSeen(ids: [String], at: Date) throws
}

/// The usage history, its retention, legal holds and the audit log.
public protocol UsageStore: Sendable {
    /// Writes, in one transaction and in this order: new records, checkpoints of running
    /// records, closures. A checkpoint or closure of a record already closed changes nothing.
    func write(_ batch: UsageBatch) throws

    /// Closes records left open by a relay that stopped without closing them (a crash,
    /// `kill -9`, power loss): ended at their last checkpoint with reason `reason`.
    /// `relayNode` limits this to one node's records; nil closes all. Returns how many.
    func closeInterruptedSessions(relayNode: String?, reason: UsageRecord.EndReason, actor: String) throws -> Int

    func usageRecord(id: String) throws -> UsageRecord?

    /// One page of a company's records that started in `range`, ordered by start time
    /// and id, after `cursor`. An export reads page after page, so memory stays flat.
    func usagePage(companyID: String, range: ExportRange, after cursor: UsageCursor?, limit: Int) throws -> [UsageRecord]

    /// The `limit` latest records of one engineer of a company, newest first (the web
    /// console's "recent sessions").
    func recentSessions(companyID: String, engineerLogin: String, limit: Int) throws -> [UsageRecord]

    // The retention purge comes in three steps, so that a caller can run each batch as a
    // job of its own and let other work in between (the relay's background pool); the
    // whole purge in one call is ``purge(policy:now:dryRun:actor:batchSize:)``. One `now`
    // for all the steps of a run keeps its cutoffs still.

    /// What a purge at `now` finds past retention: what it would destroy (except held
    /// companies') and what legal holds keep. A report with `dryRun` set.
    func purgeCounts(policy: RetentionPolicy, now: Date) throws -> PurgeReport

    /// Deletes at most `limit` rows past retention at `now` (except held companies'), in
    /// one transaction; ``finishPurge(_:actor:)`` then makes them unrecoverable. A purge
    /// stopped between batches (a crash) leaves only rows past retention for the next.
    func purgeBatch(policy: RetentionPolicy, now: Date, limit: Int) throws -> PurgeBatchResult

    /// Ends a purge run: one audit entry with the whole run's `report`, and, unless it was a
    /// dry run, makes what the batches deleted unrecoverable from every file of the store
    /// (SQLite: `VACUUM`, since deleted rows leave copies in pages' free space, then a
    /// truncated write-ahead log; a `VACUUM` that failed is redone by the next purge).
    func finishPurge(_ report: PurgeReport, actor: String) throws

    /// Takes the purge's turn, so that one purge at a time runs on a database that several
    /// relay nodes share: nil while another node (or `relay-server usage purge`) has it.
    /// The turn lasts until ``PurgeTurn/end()``, or until its holder's process ends.
    /// SQLite always gives the turn (its writers take turns on their own).
    func beginPurgeTurn() throws -> PurgeTurn?

    func placeHold(companyID: String, reason: String, actor: String) throws -> LegalHold
    /// Lifts a hold; its company's records past retention go at the next purge.
    func releaseHold(companyID: String, actor: String) throws
    func legalHolds() throws -> [LegalHold]

    func appendAudit(_ entry: AuditEntry) throws
    func auditLog(limit: Int) throws -> [AuditEntry]
}

extension UsageStore {
    /// Destroys records past retention (except held companies'), so that they cannot be
    /// recovered from the database files; `dryRun` only counts. Leaves one audit entry.
    ///
    /// Blocking, batch after batch on the calling thread: for the command line. The relay
    /// runs the same steps, each batch as a job of its own (`RetentionScheduler`).
    public func purge(
        policy: RetentionPolicy, now: Date, dryRun: Bool, actor: String, batchSize: Int = PurgeBatchResult.defaultLimit
    ) throws -> PurgeReport {
        guard let turn = try self.beginPurgeTurn() else {
            throw StoreError(.conflict, "another relay node is purging the same database right now; try again when it has finished (its log says so)")
        }
        defer { turn.end() }
        let counts = try self.purgeCounts(policy: policy, now: now)
        guard !dryRun else {
            try self.finishPurge(counts, actor: actor)
            return counts
        }
        var report = counts.purging()
        var batch: PurgeBatchResult
        repeat {
            batch = try self.purgeBatch(policy: policy, now: now, limit: batchSize)
            report.add(batch)
        } while batch.hasMore
        try self.finishPurge(report, actor: actor)
        return report
    }
}

/// What one write of the usage history carries (see ``UsageStore/write(_:)``).
public struct UsageBatch: Sendable, Hashable {
    public var opened: [UsageRecord] = []
    public var checkpoints: [UsageCheckpoint] = []
    public var closed: [UsageClosure] = []

    public init(opened: [UsageRecord] = [], checkpoints: [UsageCheckpoint] = [], closed: [UsageClosure] = []) {
        self.opened = opened
        self.checkpoints = checkpoints
        self.closed = closed
    }

    public var isEmpty: Bool { self.opened.isEmpty && self.checkpoints.isEmpty && self.closed.isEmpty }

    /// Adds a checkpoint taken after everything already in the batch. A checkpoint of a
    /// session closed in this batch is dropped: the closure has the final counters.
    public mutating func addCheckpoints(_ checkpoints: [UsageCheckpoint]) {
        guard !checkpoints.isEmpty else { return }
        let closed = Set(self.closed.map(\.sessionID))
        self.checkpoints.append(contentsOf: closed.isEmpty ? checkpoints : checkpoints.filter { !closed.contains($0.sessionID) })
    }

    /// Adds what `later` holds after what this batch holds: one batch that writes both.
    ///
    /// A batch whose write failed is kept this way until a write succeeds (the relay's
    /// usage recorder). Writing it again is safe (see ``UsageStore/write(_:)``). Only the
    /// latest checkpoint of each session is kept, and none of a session closed in either
    /// batch (the closure has the final counters), so a long outage of the store grows the
    /// batch by the sessions that start and end, not by one checkpoint per interval.
    public mutating func append(_ later: UsageBatch) {
        self.opened.append(contentsOf: later.opened)
        self.closed.append(contentsOf: later.closed)
        let closed = Set(self.closed.map(\.sessionID))
        var latest: [UsageCheckpoint] = []
        var position: [String: Int] = [:]
        for checkpoint in self.checkpoints + later.checkpoints where !closed.contains(checkpoint.sessionID) {
            if let index = position[checkpoint.sessionID] {
                latest[index] = checkpoint
            } else {
                position[checkpoint.sessionID] = latest.count
                latest.append(checkpoint)
            }
        }
        self.checkpoints = latest
    }

    /// Records, checkpoints and closures in the batch.
    public var count: Int { self.opened.count + self.checkpoints.count + self.closed.count }
}

/// The purge's turn on a shared database (``UsageStore/beginPurgeTurn()``).
public final class PurgeTurn: Sendable {
    private let release: @Sendable () -> Void

    /// A turn that `release` ends; a store that needs no lock gives one that does nothing.
    public init(release: @escaping @Sendable () -> Void = {}) { self.release = release }

    /// Gives the turn back; the next purge of any node may start.
    public func end() { self.release() }
}
