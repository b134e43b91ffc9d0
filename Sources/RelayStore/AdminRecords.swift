public import Foundation

/// What a signed-in person may do in the admin console (issue 14 item 1). Stored in the
/// `engineer` row's `role` column as ``rawValue``; every person is an engineer row, so a
/// manager or an admin can also support customers.
public enum AccountRole: StoredVocabulary {
    /// Everything of their company (`admin`).
    case admin
    /// The engineers assigned to them and the hosts of their groups, read only (`manager`).
    case manager
    /// Their own sessions (`engineer`): the default.
    case engineer
    /// The relay's own settings and every company's counts, no company's content
    /// (`operator`). An operator belongs to a company of their own (OPERATIONS.md).
    case `operator`
    /// A value this version does not know: treated as an engineer without any right.
    case other(String)

    public static let known: [AccountRole] = [.admin, .manager, .engineer, .operator]

    public init(rawValue: String) {
        self = Self.known.first { $0.rawValue == rawValue } ?? .other(rawValue)
    }

    public var rawValue: String {
        switch self {
        case .admin: "admin"
        case .manager: "manager"
        case .engineer: "engineer"
        case .operator: "operator"
        case .other(let text): text
        }
    }

    /// Parses a role typed by a person or sent by the console: one of the known names.
    public init(parsing text: String) throws {
        let role = AccountRole(rawValue: text.lowercased())
        guard case .other = role else {
            self = role
            return
        }
        throw StoreError(.invalidInput, "unknown role \"\(text)\"; use admin, manager, engineer or operator")
    }
}

/// What an API token may do (issue 14 item 8): stored as ``rawValue``.
public enum TokenScope: String, Codable, Sendable, Hashable, CaseIterable {
    /// Read the usage history, its summary and exports, and the audit and access logs.
    case export
    /// What a company admin may do in the console, except managing tokens.
    case admin

    public init(parsing text: String) throws {
        guard let scope = TokenScope(rawValue: text.lowercased()) else {
            throw StoreError(.invalidInput, "unknown token scope \"\(text)\"; use export (read only) or admin")
        }
        self = scope
    }
}

/// A company's API token for scripts (`Authorization: Bearer sra_ID.SECRET`); the store
/// keeps the digest of its secret only.
public struct APIToken: Codable, Sendable, Hashable {
    public var id: String
    public var companyID: String
    public var name: String
    package var digest: Data
    public var scope: TokenScope
    public var createdAt: Date
    /// Who made it (`console:LOGIN`, `cli`).
    public var createdBy: String
    public var lastUsedAt: Date?
}

/// A security alert for a company's admins (issue 14 item 7), shown in the console and
/// sent to the company's webhook.
public struct SecurityAlert: Codable, Sendable, Hashable {
    /// What happened: stored as ``rawValue``.
    public enum Kind: StoredVocabulary {
        /// A person signed in to the web console from a network (IPv4 /24, IPv6 /48) they
        /// had not signed in from before (`new_sign_in_network`).
        case newSignInNetwork
        /// An unattended session started (`unattended_session`).
        case unattendedSession
        /// An enrolled host was removed (`host_removed`).
        case hostRemoved
        case other(String)

        public static let known: [Kind] = [.newSignInNetwork, .unattendedSession, .hostRemoved]

        public init(rawValue: String) {
            self = Self.known.first { $0.rawValue == rawValue } ?? .other(rawValue)
        }

        public var rawValue: String {
            switch self {
            case .newSignInNetwork: "new_sign_in_network"
            case .unattendedSession: "unattended_session"
            case .hostRemoved: "host_removed"
            case .other(let text): text
            }
        }
    }

    public var id: Int64?
    public var companyID: String
    public var at: Date
    public var kind: Kind
    /// Who or what: an engineer login, a host name and id.
    public var subject: String
    /// A sentence for a person.
    public var detail: String

    public init(id: Int64? = nil, companyID: String, at: Date, kind: Kind, subject: String, detail: String) {
        self.id = id
        self.companyID = companyID
        self.at = at
        self.kind = kind
        self.subject = subject
        self.detail = detail
    }
}

/// A company's webhook for security alerts.
public struct Webhook: Sendable, Hashable {
    public var url: String
    /// The HMAC-SHA256 key of the `X-SupportRelay-Signature` header.
    public var secret: String
}

/// Which of a company's usage records someone may see (issue 14 item 1).
public enum UsageScope: Sendable, Hashable {
    /// All of them (an admin, an export token).
    case company
    /// A manager's: sessions of the engineers assigned to them (and their own), and
    /// sessions with the hosts of their groups.
    case managed(engineerLogins: [String], hostIDs: [String])
    /// One engineer's own sessions.
    case engineer(login: String)
}

/// A query of a company's usage history: the range, who may see what, and the console's
/// filters. Every usage query of the console and the admin API goes through one.
public struct UsageFilter: Sendable, Hashable {
    public var companyID: String
    public var range: ExportRange
    public var scope: UsageScope
    /// Only this engineer's sessions.
    public var engineerLogin: String?
    /// Only sessions with this enrolled host.
    public var hostID: String?
    public var mode: UsageRecord.Mode?
    /// Only sessions that ended this way.
    public var endReason: UsageRecord.EndReason?
    /// Only sessions still running (no end yet).
    public var openOnly: Bool

    public init(
        companyID: String, range: ExportRange, scope: UsageScope = .company, engineerLogin: String? = nil, hostID: String? = nil,
        mode: UsageRecord.Mode? = nil, endReason: UsageRecord.EndReason? = nil, openOnly: Bool = false
    ) {
        self.companyID = companyID
        self.range = range
        self.scope = scope
        self.engineerLogin = engineerLogin
        self.hostID = hostID
        self.mode = mode
        self.endReason = endReason
        self.openOnly = openOnly
    }
}

/// Totals of a usage query, per day of the range and per engineer (the console's chart).
public struct UsageSummary: Sendable, Hashable {
    public struct Bucket: Sendable, Hashable {
        /// A day (`2026-11-03`, in the query's time zone) or an engineer login.
        public var key: String
        public var sessions: Int
        public var seconds: Int64
    }

    public var sessions: Int
    public var seconds: Int64
    public var bytes: Int64
    /// Every day of the range, in order, days without sessions too.
    public var byDay: [Bucket]
    /// The engineers with the most session time first, at most ``topEngineers``.
    public var byEngineer: [Bucket]

    public static let topEngineers = 20
    /// The longest range a summary covers, in days (a chart of more is unreadable).
    public static let maximumDays = 400
}

/// A query of the audit or the access log of one company, newest first.
public struct LogFilter: Sendable, Hashable {
    public var companyID: String
    public var range: ExportRange
    /// Audit: the actor (`console:alice`, `cli`); access log: the subject (a login).
    public var who: String?
    /// Audit: the action (`engineer_remove`); access log: the event (`web_password`).
    public var what: String?
    /// Access log only: `accepted`, `rejected`, `throttled`.
    public var outcome: String?
    /// Entries with a smaller id than this (the next page).
    public var before: Int64?

    public init(companyID: String, range: ExportRange, who: String? = nil, what: String? = nil, outcome: String? = nil, before: Int64? = nil) {
        self.companyID = companyID
        self.range = range
        self.who = who
        self.what = what
        self.outcome = outcome
        self.before = before
    }
}

/// One company as the relay operator sees it: counts, never content.
public struct CompanyCounts: Sendable, Hashable {
    public var id: String
    public var name: String
    public var engineers: Int
    public var hosts: Int
    public var sessionsSince: Int
    public var held: Bool
}
