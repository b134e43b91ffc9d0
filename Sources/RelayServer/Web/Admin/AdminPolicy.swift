import RelayStore

/// What a caller of the admin API may do (issue 14 item 1): one decision per role and
/// token scope, made here and nowhere else. Pure: the routes ask ``allows(_:)`` before
/// they touch the store, and ``usageScope`` narrows every usage query.
struct AdminPolicy: Sendable, Hashable {
    /// Something the admin API does. Each route needs exactly one.
    enum Permission: String, Sendable, CaseIterable {
        /// The usage history, its totals and exports (narrowed by ``usageScope``).
        case readUsage
        /// The host list (a manager: their groups' hosts).
        case readHosts
        /// Enrol, rename, group, rotate and remove hosts.
        case manageHosts
        /// The list of engineers (a manager: theirs).
        case readEngineers
        /// Invite, disable, remove, reset, change roles and managers.
        case manageEngineers
        /// Retention periods, the purge preview, and the legal hold.
        case manageRetention
        /// The audit and access logs, and their exports.
        case readLogs
        /// Make and revoke API tokens (signed-in admins only: a token never makes tokens).
        case manageTokens
        /// Security alerts and the webhook.
        case manageAlerts
        /// Every company's counts and the relay's settings (the operator).
        case readRelay
    }

    /// Who is asking.
    enum Caller: Sendable, Hashable {
        /// A signed-in person with their role.
        case person(AccountRole)
        /// A script with an API token of this scope.
        case token(TokenScope)
    }

    let caller: Caller

    /// What the caller may do.
    var permissions: Set<Permission> {
        switch self.caller {
        case .person(.admin):
            Set(Permission.allCases).subtracting([.readRelay])
        case .person(.manager):
            [.readUsage, .readHosts, .readEngineers]
        case .person(.engineer):
            [.readUsage]
        case .person(.operator):
            [.readRelay]
        case .person(.other):
            []
        case .token(.export):
            [.readUsage, .readLogs]
        case .token(.admin):
            Set(Permission.allCases).subtracting([.readRelay, .manageTokens])
        }
    }

    func allows(_ permission: Permission) -> Bool { self.permissions.contains(permission) }

    /// The console's tabs for this caller, in order (`GET /api/admin/me`).
    var sections: [String] {
        let permissions = self.permissions
        var sections: [String] = []
        if permissions.contains(.readUsage) { sections.append("usage") }
        if permissions.contains(.readHosts) { sections.append("hosts") }
        if permissions.contains(.readEngineers) { sections.append("engineers") }
        if permissions.contains(.manageRetention) { sections.append("retention") }
        if permissions.contains(.readLogs) { sections.append("audit") }
        if permissions.contains(.manageTokens) { sections.append("tokens") }
        if permissions.contains(.manageAlerts) { sections.append("alerts") }
        if permissions.contains(.readRelay) { sections.append("relay") }
        return sections
    }

    /// Which usage records of the company the caller sees: a manager sees sessions of the
    /// engineers assigned to them (and their own) and sessions with the hosts of their
    /// groups; an engineer their own.
    static func usageScope(
        caller: Caller, login: String, managedLogins: [String], groupHostIDs: [String]
    ) -> UsageScope {
        switch caller {
        case .person(.admin), .token: .company
        case .person(.manager): .managed(engineerLogins: [login] + managedLogins, hostIDs: groupHostIDs)
        default: .engineer(login: login)
        }
    }
}
