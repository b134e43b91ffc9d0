public import Foundation

/// A company that uses the relay: its engineers, enrolled hosts and usage history belong to it.
public struct Company: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    package var adminTokenDigest: Data
    public var createdAt: Date
    /// The company's policy: in attended sessions, its engineers type the security code the
    /// customer reads out before anything they type or click is sent.
    public var confirmSecurityCode: Bool = false
    /// Where security alerts are posted (issue 14 item 7), and the key that signs them.
    package var webhookURL: String?
    package var webhookSecret: String?
}

/// A support engineer who opens viewers.
public struct Engineer: Codable, Sendable, Hashable {
    public var id: String
    public var companyID: String
    public var login: String
    /// The digest of a token issued before account keys (legacy); empty for an engineer
    /// who logs in with a key.
    package var tokenDigest: Data
    /// The raw 32 bytes of the Ed25519 public key the engineer logs in with; nil for a
    /// legacy token account. The relay holds no secret of a key account (issue 12 item 4).
    public var publicKey: Data?
    public var createdAt: Date
    /// The name of the engineer's company, as the store has it: what a customer is shown
    /// about who connects (issue 10 item 13). Read from the `company` table by every
    /// method that returns an engineer; never stored in the `engineer` row.
    public var companyName: String = ""
    /// The company's ``Company/confirmSecurityCode`` policy, read with the name.
    public var confirmSecurityCode: Bool = false
    /// What they may do in the admin console (issue 14).
    public var role: AccountRole = .engineer
    /// The manager they are assigned to, if any.
    public var managerID: String?
    /// When an admin disabled them: a disabled engineer cannot log in anywhere.
    public var disabledAt: Date?
    /// A manager's host groups (from `manager_group`); empty for other roles.
    public var groups: [String] = []

    /// The columns of the `engineer` row; ``companyName`` comes from the company and
    /// ``groups`` from `manager_group`.
    enum CodingKeys: String, CodingKey {
        case id, companyID, login, tokenDigest, publicKey, createdAt, role, managerID, disabledAt
    }

    /// What the relay compares to end the live sessions of a removed account or one whose
    /// credential changed (``AccountStore/credentialDigests(engineerIDs:hostIDs:)``): the
    /// public key of a key account, the token's digest of a legacy one.
    package var credentialDigest: Data { self.publicKey ?? self.tokenDigest }

    /// How the engineer logs in: with a key, or with a legacy token.
    public var loginMethod: LoginMethod { LoginMethod(publicKey: self.publicKey, secretDigest: self.tokenDigest) }
}

/// An endpoint PC enrolled for unattended access.
public struct EnrolledHost: Codable, Sendable, Hashable {
    public var id: String
    public var companyID: String
    public var name: String
    /// The digest of a secret issued before account keys (legacy); empty for a host that
    /// logs in with a key or has none yet.
    package var secretDigest: Data
    /// The raw 32 bytes of the Ed25519 public key the host logs in with; nil for a legacy
    /// secret account or a host enrolled without a key, which cannot log in until it has one.
    public var publicKey: Data?
    public var createdAt: Date
    /// When the host last registered with the relay or left it; nil: never.
    public var lastSeenAt: Date?
    /// Its group (a department), which scopes managers; "" for none.
    public var groupName: String = ""

    /// What the relay compares to end the live sessions of a removed account or one whose
    /// credential changed (``AccountStore/credentialDigests(engineerIDs:hostIDs:)``).
    package var credentialDigest: Data { self.publicKey ?? self.secretDigest }

    /// How the host logs in: with a key, a legacy secret, or not at all yet.
    public var loginMethod: LoginMethod { LoginMethod(publicKey: self.publicKey, secretDigest: self.secretDigest) }
}

/// How an engineer or an enrolled host logs in to the relay (issue 12 item 4).
public enum LoginMethod: Sendable, Hashable {
    /// With the Ed25519 key of this fingerprint (`SHA256:…`, the unpadded base64 of the
    /// SHA-256 digest of the raw public key), proved in the TLS handshake. The relay holds
    /// the public key only: nothing it stores logs in.
    case key(fingerprint: String)
    /// With a token (an engineer) or a secret (a host) issued before account keys. The
    /// relay holds its digest, but the token itself is replayable: whoever copies it from a
    /// proxy or a configuration file logs in. `set-key` moves the account to a key.
    case token
    /// No credential yet: a host enrolled without a key, which cannot log in until
    /// `relay-server host set-key` gives it one.
    case noKey

    init(publicKey: Data?, secretDigest: Data) {
        if let publicKey {
            self = .key(fingerprint: AccountKey.fingerprint(rawPublicKey: publicKey))
        } else {
            self = secretDigest.isEmpty ? .noKey : .token
        }
    }

    /// The key's fingerprint, or nil for a token or no credential.
    public var fingerprint: String? {
        if case .key(let fingerprint) = self { return fingerprint }
        return nil
    }
}

/// One authentication event for the access log (kept three months; DESIGN.md).
public struct AccessEvent: Codable, Sendable, Hashable {
    public enum Outcome: String, Codable, Sendable { case accepted, rejected, throttled }

    /// What was attempted: which credential was presented. The `event` column holds
    /// ``rawValue`` (OPERATIONS.md "The access log").
    public enum Kind: StoredVocabulary {
        /// An engineer's viewer token (`viewer_token`): the legacy login.
        case viewerToken
        /// An enrolled host's id and secret (`host_secret`): the legacy login.
        case hostSecret
        /// An engineer's key, proved in the TLS handshake (`engineer_key`).
        case engineerKey
        /// An enrolled host's id and key, proved in the TLS handshake (`host_key`).
        case hostKey
        /// A one-time support code (`support_code`).
        case supportCode
        /// A company's admin token on the admin API (`admin_token`).
        case adminToken
        /// Web sign-in (issue 13 item 2): a login and password (`web_password`), a TOTP
        /// code (`web_totp`), a recovery code (`web_recovery_code`), a one-time sign-in
        /// link (`web_signin_link`).
        case webPassword, webTOTP, webRecoveryCode, webSignInLink
        /// A browser's viewer login over the web port's WebSocket, by the engineer's web
        /// session (`web_session`).
        case webSession
        /// A script's API token on the admin API of the web port (`api_token`).
        case apiToken
        /// A value this version does not know, read from a row another version wrote;
        /// kept and shown as it is.
        case other(String)

        public static let known: [Kind] = [
            .viewerToken, .hostSecret, .engineerKey, .hostKey, .supportCode, .adminToken, .webPassword, .webTOTP, .webRecoveryCode, .webSignInLink, .webSession,
            .apiToken,
        ]

        public init(rawValue: String) {
            self = Self.known.first { $0.rawValue == rawValue } ?? .other(rawValue)
        }

        public var rawValue: String {
            switch self {
            case .viewerToken: "viewer_token"
            case .hostSecret: "host_secret"
            case .engineerKey: "engineer_key"
            case .hostKey: "host_key"
            case .supportCode: "support_code"
            case .adminToken: "admin_token"
            case .webPassword: "web_password"
            case .webTOTP: "web_totp"
            case .webRecoveryCode: "web_recovery_code"
            case .webSignInLink: "web_signin_link"
            case .webSession: "web_session"
            case .apiToken: "api_token"
            case .other(let text): text
            }
        }
    }

    public var id: Int64?
    public var at: Date
    /// What was attempted.
    public var event: Kind
    public var outcome: Outcome
    public var sourceAddress: String
    public var companyID: String?
    /// Who: an engineer login, a host id, or a code's last two digits — never a secret.
    public var subject: String?
    public var detail: String?

    public init(
        id: Int64? = nil, at: Date, event: Kind, outcome: Outcome, sourceAddress: String, companyID: String? = nil, subject: String? = nil,
        detail: String? = nil
    ) {
        self.id = id
        self.at = at
        self.event = event
        self.outcome = outcome
        self.sourceAddress = sourceAddress
        self.companyID = companyID
        self.subject = subject
        self.detail = detail
    }
}

/// A time as whole milliseconds since 1970 UTC: how the usage history stores times, so
/// that retention arithmetic and range queries are exact integer comparisons.
public typealias Milliseconds = Int64

extension Date {
    /// Milliseconds since 1970 UTC, rounded down.
    public var milliseconds: Milliseconds { Milliseconds((self.timeIntervalSince1970 * 1000).rounded(.down)) }

    public init(milliseconds: Milliseconds) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}

/// Bytes and frames a session has forwarded each way.
public struct UsageCounters: Sendable, Hashable {
    public var bytesToViewer: Int64
    public var bytesToHost: Int64
    public var framesToViewer: Int64
    public var framesToHost: Int64

    public init(bytesToViewer: Int64 = 0, bytesToHost: Int64 = 0, framesToViewer: Int64 = 0, framesToHost: Int64 = 0) {
        self.bytesToViewer = bytesToViewer
        self.bytesToHost = bytesToHost
        self.framesToViewer = framesToViewer
        self.framesToHost = framesToHost
    }

    public static let zero = UsageCounters()
}

/// One paired session in the usage history (DESIGN.md "Usage history"): written when the
/// session is paired, its counters checkpointed while it runs, closed when it ends.
public struct UsageRecord: Sendable, Hashable {
    /// The session id (32 hex digits).
    public var id: String
    public var companyID: String
    public var engineerLogin: String
    /// The enrolled host's id; nil for an attended session (the host came with a code).
    public var hostID: String?
    public var hostName: String
    public var mode: Mode
    public var startedAt: Milliseconds
    /// nil while the session runs.
    public var endedAt: Milliseconds?
    public var counters: UsageCounters
    /// Why the session ended; nil while it runs.
    public var endReason: EndReason?
    public var viewerAddress: String
    public var hostAddress: String
    public var relayNode: String
    /// What the engineer viewed with: `relay-agent view`, or the browser viewer.
    public var viewerClient: ViewerClient
    /// When the counters were last written: where a record left open by a crash is closed.
    public var checkpointedAt: Milliseconds

    public init(
        id: String, companyID: String, engineerLogin: String, hostID: String?, hostName: String, mode: Mode,
        startedAt: Milliseconds, endedAt: Milliseconds? = nil, counters: UsageCounters = .zero, endReason: EndReason? = nil,
        viewerAddress: String, hostAddress: String, relayNode: String, viewerClient: ViewerClient = .agent, checkpointedAt: Milliseconds? = nil
    ) {
        self.id = id
        self.companyID = companyID
        self.engineerLogin = engineerLogin
        self.hostID = hostID
        self.hostName = hostName
        self.mode = mode
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.counters = counters
        self.endReason = endReason
        self.viewerAddress = viewerAddress
        self.hostAddress = hostAddress
        self.relayNode = relayNode
        self.viewerClient = viewerClient
        self.checkpointedAt = checkpointedAt ?? endedAt ?? startedAt
    }

    /// Whole seconds from start to end; nil while the session runs.
    public var durationSeconds: Int64? {
        self.endedAt.map { max(0, $0 - self.startedAt) / 1000 }
    }
}

extension UsageRecord {
    /// How a session was paired: the `mode` column and export column hold ``rawValue``.
    public enum Mode: StoredVocabulary {
        /// By a one-time support code the customer typed in (`attended`).
        case attended
        /// By host id, to a host enrolled for the engineer's company (`unattended`).
        case unattended
        /// A value this version does not know, read from a row another version wrote;
        /// kept, and exported as it is.
        case other(String)

        public static let known: [Mode] = [.attended, .unattended]

        public init(rawValue: String) {
            self = Self.known.first { $0.rawValue == rawValue } ?? .other(rawValue)
        }

        public var rawValue: String {
            switch self {
            case .attended: "attended"
            case .unattended: "unattended"
            case .other(let text): text
            }
        }
    }

    /// What the engineer viewed the session with: the `viewerClient` column and the
    /// `viewer_client` export column hold ``rawValue``.
    public enum ViewerClient: StoredVocabulary {
        /// `relay-agent view` over the relay port (`agent`).
        case agent
        /// The browser viewer over the web port's WebSocket (`browser`).
        case browser
        /// A value this version does not know, read from a row another version wrote.
        case other(String)

        public static let known: [ViewerClient] = [.agent, .browser]

        public init(rawValue: String) {
            self = Self.known.first { $0.rawValue == rawValue } ?? .other(rawValue)
        }

        public var rawValue: String {
            switch self {
            case .agent: "agent"
            case .browser: "browser"
            case .other(let text): text
            }
        }
    }

    /// Why a session ended: the `end_reason` column holds ``rawValue``, the snake_case
    /// name of the protocol's ByeReason (PROTOCOL.md §6.2; RelayStore does not depend on
    /// RelayWire, so the relay maps one to the other by name).
    public enum EndReason: StoredVocabulary {
        case normal
        case peerLeft
        case relayShutdown
        case idleTimeout
        case handshakeTimeout
        case protocolError
        case revoked
        /// Closed at the next start after a crash (``UsageStore/closeInterruptedSessions(relayNode:reason:actor:)``).
        case relayRestart
        case declined
        /// A name this version does not know: a Bye reason of a newer agent
        /// (`unknown_42`), or a row another version wrote. Kept, and exported as it is.
        case other(String)

        public static let known: [EndReason] = [
            .normal, .peerLeft, .relayShutdown, .idleTimeout, .handshakeTimeout, .protocolError, .revoked, .relayRestart, .declined,
        ]

        public init(rawValue: String) {
            self = Self.known.first { $0.rawValue == rawValue } ?? .other(rawValue)
        }

        public var rawValue: String {
            switch self {
            case .normal: "normal"
            case .peerLeft: "peer_left"
            case .relayShutdown: "relay_shutdown"
            case .idleTimeout: "idle_timeout"
            case .handshakeTimeout: "handshake_timeout"
            case .protocolError: "protocol_error"
            case .revoked: "revoked"
            case .relayRestart: "relay_restart"
            case .declined: "declined"
            case .other(let text): text
            }
        }
    }
}

/// A running session's counters at a checkpoint.
public struct UsageCheckpoint: Sendable, Hashable {
    public var sessionID: String
    public var counters: UsageCounters
    public var at: Milliseconds

    public init(sessionID: String, counters: UsageCounters, at: Milliseconds) {
        self.sessionID = sessionID
        self.counters = counters
        self.at = at
    }
}

/// How and when a session ended, with its final counters.
public struct UsageClosure: Sendable, Hashable {
    public var sessionID: String
    public var endedAt: Milliseconds
    public var counters: UsageCounters
    public var reason: UsageRecord.EndReason

    public init(sessionID: String, endedAt: Milliseconds, counters: UsageCounters, reason: UsageRecord.EndReason) {
        self.sessionID = sessionID
        self.endedAt = endedAt
        self.counters = counters
        self.reason = reason
    }
}

/// One entry of the audit log: who did what, with counts — never the records' contents.
public struct AuditEntry: Codable, Sendable, Hashable {
    public var id: Int64?
    public var at: Date
    /// `cli`, `relay` (scheduled work) or `api:<company id>`.
    public var actor: String
    public var action: Action
    public var companyID: String?
    /// The subject's id (an engineer or host id), when the action has one.
    public var subject: String?
    /// Counts and parameters as `key=value` pairs, e.g. `sessions=120 access_log=3400`.
    public var detail: String?

    public init(id: Int64? = nil, at: Date = Date(), actor: String, action: Action, companyID: String? = nil, subject: String? = nil, detail: String? = nil) {
        self.id = id
        self.at = at
        self.actor = actor
        self.action = action
        self.companyID = companyID
        self.subject = subject
        self.detail = detail
    }
}

extension AuditEntry {
    /// What was done: the `action` column holds ``rawValue`` (OPERATIONS.md "Audit log").
    public enum Action: StoredVocabulary {
        /// A retention purge (`purge`), or one that only counted (`purge_dry_run`).
        case purge, purgeDryRun
        /// A usage export, by the command line or the admin API (`export`).
        case export
        /// A legal hold placed (`hold`) or lifted (`release`).
        case hold, release
        case companyAdd, companyRemove, companyRotate
        /// Accounts added, removed, or given a new token or secret (`engineer_rotate`,
        /// `host_rotate`: before account keys; nothing issues tokens to agents any more).
        case engineerAdd, engineerRemove, engineerRotate
        case hostEnroll, hostRemove, hostRotate
        /// An engineer's or a host's login key set (`engineer_set_key`, `host_set_key`): the
        /// detail has the new key's fingerprint and what it replaced.
        case engineerSetKey, hostSetKey
        /// A company's policy changed (`company_policy`).
        case companyPolicy
        /// Web sign-in (issue 13 item 2): an engineer's password set
        /// (`engineer_set_password`), two-factor enrolled with new recovery codes
        /// (`engineer_enrol_totp`) or reset by an admin (`engineer_reset_totp`), a one-time
        /// sign-in link issued (`engineer_signin_link`), a recovery code used
        /// (`engineer_recovery_code`). Details carry counts and expiry times, never a secret.
        case engineerSetPassword, engineerEnrolTOTP, engineerResetTOTP, engineerSignInLink, engineerRecoveryCode
        /// Records left open by a crash, closed at the next start (`restart_recovery`).
        case restartRecovery
        /// The admin console (issue 14): a role changed (`engineer_role`), an engineer
        /// assigned to a manager (`engineer_manager`), a manager's host groups set
        /// (`engineer_groups`), an engineer disabled or enabled (`engineer_disable`,
        /// `engineer_enable`), a host renamed or moved to a group (`host_rename`,
        /// `host_group`), an API token made or revoked (`token_create`, `token_revoke`),
        /// the company's webhook set or removed (`webhook_set`).
        case engineerRole, engineerManager, engineerGroups, engineerDisable, engineerEnable, hostRename, hostGroup
        case tokenCreate, tokenRevoke, webhookSet
        /// A single node's SQLite records copied into PostgreSQL (`store_migrate`): the
        /// detail has the rows of each table (issue 15).
        case storeMigrate
        /// A value this version does not know, read from a row another version wrote;
        /// kept and shown as it is.
        case other(String)

        public static let known: [Action] = [
            .purge, .purgeDryRun, .export, .hold, .release, .companyAdd, .companyRemove, .companyRotate,
            .engineerAdd, .engineerRemove, .engineerRotate, .hostEnroll, .hostRemove, .hostRotate, .restartRecovery, .companyPolicy,
            .engineerSetKey, .hostSetKey, .engineerSetPassword, .engineerEnrolTOTP, .engineerResetTOTP, .engineerSignInLink, .engineerRecoveryCode,
            .engineerRole, .engineerManager, .engineerGroups, .engineerDisable, .engineerEnable, .hostRename, .hostGroup, .tokenCreate, .tokenRevoke,
            .webhookSet, .storeMigrate,
        ]

        public init(rawValue: String) {
            self = Self.known.first { $0.rawValue == rawValue } ?? .other(rawValue)
        }

        public var rawValue: String {
            switch self {
            case .purge: "purge"
            case .purgeDryRun: "purge_dry_run"
            case .export: "export"
            case .hold: "hold"
            case .release: "release"
            case .companyAdd: "company_add"
            case .companyRemove: "company_remove"
            case .companyRotate: "company_rotate"
            case .companyPolicy: "company_policy"
            case .engineerAdd: "engineer_add"
            case .engineerRemove: "engineer_remove"
            case .engineerRotate: "engineer_rotate"
            case .engineerSetKey: "engineer_set_key"
            case .hostEnroll: "host_enroll"
            case .hostRemove: "host_remove"
            case .hostRotate: "host_rotate"
            case .hostSetKey: "host_set_key"
            case .engineerSetPassword: "engineer_set_password"
            case .engineerEnrolTOTP: "engineer_enrol_totp"
            case .engineerResetTOTP: "engineer_reset_totp"
            case .engineerSignInLink: "engineer_signin_link"
            case .engineerRecoveryCode: "engineer_recovery_code"
            case .restartRecovery: "restart_recovery"
            case .engineerRole: "engineer_role"
            case .engineerManager: "engineer_manager"
            case .engineerGroups: "engineer_groups"
            case .engineerDisable: "engineer_disable"
            case .engineerEnable: "engineer_enable"
            case .hostRename: "host_rename"
            case .hostGroup: "host_group"
            case .tokenCreate: "token_create"
            case .tokenRevoke: "token_revoke"
            case .webhookSet: "webhook_set"
            case .storeMigrate: "store_migrate"
            case .other(let text): text
            }
        }
    }
}

/// A closed set of values stored as text: a record field whose column holds ``rawValue``.
///
/// Every such type has a case `other(String)` for a value this version does not know,
/// so a row written by another version (or a peer's unknown Bye reason) is read and
/// exported unchanged instead of failing the read. Equality and hashing go by
/// ``rawValue``, so `.other("normal")` equals `.normal`.
public protocol StoredVocabulary: RawRepresentable<String>, Codable, Hashable, Sendable, CustomStringConvertible {
    /// The values this version knows, each with its own case.
    static var known: [Self] { get }
    init(rawValue: String)
}

extension StoredVocabulary {
    public var description: String { self.rawValue }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.rawValue == rhs.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.rawValue) }

    /// As a single string, so that a Codable record stores the text in its column.
    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.rawValue)
    }
}

/// A company whose records are kept past retention while an investigation runs.
public struct LegalHold: Codable, Sendable, Hashable {
    public var companyID: String
    public var reason: String
    public var heldAt: Date
    public var heldBy: String
}

/// What a purge removed (or, dry, would remove).
public struct PurgeReport: Sendable, Hashable {
    /// Usage records past retention, removed.
    public var sessions: Int
    /// Access-log entries (and security alerts, kept as long) past retention, removed.
    public var accessLogEntries: Int
    /// Records past retention kept because their company is under legal hold.
    public var heldSessions: Int
    public var heldAccessLogEntries: Int
    /// Usage records ended before this were past retention.
    public var usageCutoff: Date
    public var accessLogCutoff: Date
    public var dryRun: Bool

    public init(sessions: Int, accessLogEntries: Int, heldSessions: Int, heldAccessLogEntries: Int, usageCutoff: Date, accessLogCutoff: Date, dryRun: Bool) {
        self.sessions = sessions
        self.accessLogEntries = accessLogEntries
        self.heldSessions = heldSessions
        self.heldAccessLogEntries = heldAccessLogEntries
        self.usageCutoff = usageCutoff
        self.accessLogCutoff = accessLogCutoff
        self.dryRun = dryRun
    }
}

extension PurgeReport {
    /// The report of a purge about to destroy what these counts found: nothing destroyed
    /// yet; the cutoffs and what legal holds keep stay.
    public func purging() -> PurgeReport {
        var report = self
        report.sessions = 0
        report.accessLogEntries = 0
        report.dryRun = false
        return report
    }

    /// Counts what `batch` destroyed.
    public mutating func add(_ batch: PurgeBatchResult) {
        self.sessions += batch.sessions
        self.accessLogEntries += batch.accessLogEntries
    }
}

/// What one batch of a purge destroyed (``UsageStore/purgeBatch(policy:now:limit:)``).
public struct PurgeBatchResult: Sendable, Hashable {
    /// Rows per batch unless the caller asks for another size: one short transaction, so a
    /// purge of millions of rows never holds the write lock for long (benchmarks/RESULTS.md
    /// "store").
    public static let defaultLimit = 5_000

    /// Usage records destroyed.
    public var sessions: Int
    /// Access-log entries destroyed.
    public var accessLogEntries: Int
    /// Whether rows past retention may be left: the batch was full.
    public var hasMore: Bool

    public init(sessions: Int, accessLogEntries: Int, hasMore: Bool) {
        self.sessions = sessions
        self.accessLogEntries = accessLogEntries
        self.hasMore = hasMore
    }
}

/// Where an export page ends: the next page starts after this record.
public struct UsageCursor: Sendable, Hashable {
    public var startedAt: Milliseconds
    public var id: String

    public init(startedAt: Milliseconds, id: String) {
        self.startedAt = startedAt
        self.id = id
    }

    public init(after record: UsageRecord) {
        self.init(startedAt: record.startedAt, id: record.id)
    }
}
