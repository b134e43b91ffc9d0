public import Foundation

/// What the admin console and the admin API need beyond accounts and usage (issue 14):
/// roles and scopes, host groups, filtered usage with totals, the logs by company, API
/// tokens, security alerts and webhooks, and the operator's counts.
///
/// Like the other store protocols, methods block: the relay calls them on its thread
/// pools. Every change is audited with `actor` (`console:LOGIN`, `token:ID`, `cli`).
public protocol AdminStore: Sendable {
    // MARK: People

    /// Sets an engineer's role (the console keeps an admin from changing their own).
    func setRole(engineerID: String, role: AccountRole, actor: String) throws -> Engineer
    /// Assigns an engineer to a manager of their company (nil: to none).
    func setManager(engineerID: String, managerID: String?, actor: String) throws -> Engineer
    /// The host groups a manager is scoped to, replacing earlier ones.
    func setManagerGroups(engineerID: String, groups: [String], actor: String) throws -> Engineer
    /// Disables (or enables again) an engineer: a disabled one cannot log in anywhere, and
    /// their web sessions and sign-in link end at once (the relay ends live sessions,
    /// since ``AccountStore/credentialDigests(engineerIDs:hostIDs:)`` leaves them out).
    func setDisabled(engineerID: String, disabled: Bool, actor: String) throws -> Engineer

    // MARK: Hosts

    func renameHost(id: String, name: String, actor: String) throws -> EnrolledHost
    /// Puts a host in a group (a department); "" takes it out of any.
    func setHostGroup(id: String, group: String, actor: String) throws -> EnrolledHost

    // MARK: Usage

    /// One page of the records `filter` selects, by start time and id, after `cursor`.
    func usagePage(_ filter: UsageFilter, after cursor: UsageCursor?, limit: Int) throws -> [UsageRecord]
    /// How many records `filter` selects.
    func usageCount(_ filter: UsageFilter) throws -> Int
    /// Totals of the records `filter` selects, per day (in `timeZone`) and per engineer.
    func usageSummary(_ filter: UsageFilter, timeZone: ExportTimeZone) throws -> UsageSummary
    /// What the next purge would destroy of one company, and what its hold keeps.
    func purgeCounts(companyID: String, policy: RetentionPolicy, now: Date) throws -> PurgeReport

    // MARK: Logs

    /// A page of the company's audit log, newest first.
    func auditPage(_ filter: LogFilter, limit: Int) throws -> [AuditEntry]
    /// A page of the company's access log, newest first.
    func accessPage(_ filter: LogFilter, limit: Int) throws -> [AccessEvent]

    // MARK: API tokens

    /// A new token; its secret (`sra_ID.SECRET`) is returned this once.
    func createAPIToken(companyID: String, name: String, scope: TokenScope, actor: String) throws -> (APIToken, secret: String)
    func apiTokens(companyID: String) throws -> [APIToken]
    func revokeAPIToken(id: String, companyID: String, actor: String) throws
    /// The token this secret is, with its last use set to `at`; nil when none.
    func authenticateAPIToken(_ secret: String, at: Date) throws -> APIToken?

    // MARK: Alerts

    /// Records that the engineer signed in from `network`; true when it is a network they
    /// had not signed in from before (and they had signed in before: the first sign-in
    /// sets no alert).
    func noteSignInNetwork(engineerID: String, network: String, at: Date) throws -> Bool
    func addAlert(_ alert: SecurityAlert) throws -> SecurityAlert
    /// A page of the company's alerts, newest first, before the alert with id `before`.
    func alerts(companyID: String, before: Int64?, limit: Int) throws -> [SecurityAlert]
    /// Sets the company's webhook URL with a new signing secret (returned), or removes it (nil).
    func setWebhook(companyID: String, url: String?, actor: String) throws -> Webhook?
    func webhook(companyID: String) throws -> Webhook?

    // MARK: Operator

    /// Every company's counts; `sessionsSince` counts sessions started since then.
    func companyCounts(sessionsSince: Date) throws -> [CompanyCounts]
}
