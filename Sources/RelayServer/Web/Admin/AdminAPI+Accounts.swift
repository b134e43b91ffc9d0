import Crypto
import Foundation
import NIOCore
import RelaySignIn
import RelayStore
import RelayWire

/// Hosts and people (issue 14 items 3 and 4). Admins change them; managers read their
/// scope. Every change is audited by the store with the caller as actor, and a change
/// that takes access away (remove, disable, a new key) ends live sessions at once.
extension AdminAPI {
    // MARK: Hosts

    struct HostRow: Encodable {
        let id: String
        let name: String
        let group: String
        let online: Bool
        @Nullable var lastSeenAt: Date?
        let loginMethod: String
        @Nullable var fingerprint: String?
        let createdAt: Date
    }

    func hostRow(_ host: EnrolledHost, online: Bool) -> HostRow {
        let method: String
        switch host.loginMethod {
        case .key: method = "key"
        case .token: method = "token"
        case .noKey: method = "none"
        }
        return HostRow(
            id: host.id, name: host.name, group: host.groupName, online: online, lastSeenAt: online ? self.relay.now() : host.lastSeenAt,
            loginMethod: method, fingerprint: host.loginMethod.fingerprint, createdAt: host.createdAt)
    }

    /// The hosts the caller sees: all of the company's, or a manager's groups'.
    private func visibleHosts(_ caller: AdminCaller) async throws -> [EnrolledHost] {
        try self.require(.readHosts, caller)
        let (store, companyID) = (self.store, caller.companyID)
        var hosts = try await self.run { try store.hosts(companyID: companyID) }
        if let engineer = caller.engineer, engineer.role == .manager {
            let groups = Set(engineer.groups)
            hosts = hosts.filter { groups.contains($0.groupName) && !$0.groupName.isEmpty }
        }
        return hosts.sorted { ($0.name.lowercased(), $0.id) < ($1.name.lowercased(), $1.id) }
    }

    private func isOnline(_ hostID: String, companyID: String) -> Bool {
        self.relay.pairing.withLockedValue { $0.isBusy(hostID: hostID, companyID: companyID) } != nil
    }

    func hosts(_ caller: AdminCaller) async throws -> WebReply {
        let hosts = try await self.visibleHosts(caller)
        let rows = hosts.map { self.hostRow($0, online: self.isOnline($0.id, companyID: caller.companyID)) }
        let groups = Array(Set(hosts.map(\.groupName).filter { !$0.isEmpty })).sorted()
        return .json(HostList(hosts: rows, groups: groups))
    }

    private struct HostList: Encodable {
        let hosts: [HostRow]
        let groups: [String]
    }

    private struct EnrolForm: Decodable {
        let name: String
        let group: String?
        let publicKey: String?
    }

    private struct Enrolled: Encodable {
        let host: HostRow
        let commands: [String]
        let text: String
    }

    func enrolHost(_ caller: AdminCaller, _ request: WebRequest) async throws -> WebReply {
        try self.require(.manageHosts, caller)
        let form = try WebApplication.decode(EnrolForm.self, request)
        let key = try form.publicKey.flatMap { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : $0 }.map(Self.publicKey(parsing:))
        let (store, companyID, actor) = (self.store, caller.companyID, caller.actor)
        let host = try await self.run {
            var host = try store.enrollHost(companyID: companyID, name: form.name, publicKey: key, actor: actor)
            if let group = form.group, !group.trimmingCharacters(in: .whitespaces).isEmpty {
                host = try store.setHostGroup(id: host.id, group: group, actor: actor)
            }
            return host
        }
        let relayAddress = request.headers.first(name: "Host") ?? "RELAY"
        let fingerprint = self.application.fingerprint()
        let run = "relay-agent host --relay \(relayAddress) --fingerprint \(fingerprint) --host-id \(host.id) --any-engineer"
        let commands: [String]
        let text: String
        if key == nil {
            commands = ["relay-agent keygen --host-id \(host.id)", run]
            text =
                "The host cannot log in until it has a key. On the host, run the first command: it prints the host's public key. Paste it here (Rotate key), then run the second command on the host. Replace --any-engineer with --engineer-keys FILE to let only some engineers in."
        } else {
            commands = [run]
            text =
                "On the host, with the key file that public key came from, run this command. Replace --any-engineer with --engineer-keys FILE to let only some engineers in."
        }
        return .json(Enrolled(host: self.hostRow(host, online: false), commands: commands, text: text))
    }

    private struct HostChange: Decodable {
        let id: String
        let name: String?
        let group: String?
        let publicKey: String?
    }

    func changeHost(_ caller: AdminCaller, _ request: WebRequest, action: String) async throws -> WebReply {
        try self.require(.manageHosts, caller)
        let form = try WebApplication.decode(HostChange.self, request)
        let (store, companyID, actor) = (self.store, caller.companyID, caller.actor)
        // The host must be the caller's company's: another company's id is "not found".
        let host = try await self.run { try store.hosts(companyID: companyID).first { $0.id == form.id } }
        guard let host else { throw WebFailure(.notFound, "no host with id \(form.id) in your company; reload the hosts list") }
        switch action {
        case "rename":
            guard let name = form.name else { throw WebFailure(.badRequest, "give the host's new name") }
            let changed = try await self.run { try store.renameHost(id: host.id, name: name, actor: actor) }
            return .json(["host": self.hostRow(changed, online: self.isOnline(host.id, companyID: companyID))])
        case "group":
            let changed = try await self.run { try store.setHostGroup(id: host.id, group: form.group ?? "", actor: actor) }
            return .json(["host": self.hostRow(changed, online: self.isOnline(host.id, companyID: companyID))])
        case "key":
            guard let text = form.publicKey, !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw WebFailure(.badRequest, "paste the host's public key, which `relay-agent keygen --host-id \(host.id)` prints on the host")
            }
            let key = try Self.publicKey(parsing: text)
            let changed = try await self.run { try store.setHostKey(id: host.id, publicKey: key, actor: actor) }
            self.endRevokedSessions()
            return .json(["host": self.hostRow(changed, online: false)])
        case "remove":
            try await self.run { try store.removeHost(id: host.id, actor: actor) }
            self.endRevokedSessions()
            self.alert(
                SecurityAlert(
                    companyID: companyID, at: self.relay.now(), kind: .hostRemoved, subject: "\(host.name) (\(host.id))",
                    detail: "host \(host.name) (\(host.id)) was removed by \(actor)"))
            return .json([String: String]())
        default:
            throw WebFailure(.notFound, "there is no hosts/\(action) in the admin API; docs/admin-openapi.yaml lists the routes")
        }
    }

    /// An API token may manage engineers and managers, but never make an admin or take over
    /// one's account: otherwise a leaked `admin` token would make its holder a person with
    /// every right, who signs in and makes more tokens. Admins are made by admins, signed in.
    static func refuseTokenGrantingAdmin(_ caller: AdminCaller, role: AccountRole) throws {
        guard caller.token != nil, role == .admin else { return }
        throw WebFailure(.forbidden, "an API token cannot make an admin or change an admin's account; an admin does it, signed in to the console")
    }

    /// A public key as `relay-agent keygen` prints it; 400 with what to paste otherwise.
    static func publicKey(parsing text: String) throws -> Curve25519.Signing.PublicKey {
        guard let key = PublicKeyText.parse(text) else {
            throw WebFailure(.badRequest, "that is not an Ed25519 public key; \(PublicKeyText.expected)")
        }
        return key
    }

    /// Ends, now rather than at the next periodic check, the live sessions of accounts
    /// that were removed, disabled or given a new key.
    func endRevokedSessions() {
        let relay = self.relay
        relay.threadPool.submit { _ in relay.checkCredentials() }
    }

    // MARK: Engineers

    struct EngineerRow: Encodable {
        let id: String
        let login: String
        let role: String
        @Nullable var managerID: String?
        @Nullable var managerLogin: String?
        let groups: [String]
        let disabled: Bool
        let twoFactor: Bool
        let password: Bool
        let loginMethod: String
        let createdAt: Date
    }

    /// The rows of `engineers`, with who manages them and their web credentials' state.
    private func engineerRows(_ engineers: [Engineer], all: [Engineer]) async throws -> [EngineerRow] {
        let store = self.store
        let logins = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0.login) })
        let credentials = try await self.run { try engineers.map { try store.webCredentials(engineerID: $0.id) } }
        return zip(engineers, credentials).map { engineer, credentials in
            let method: String
            switch engineer.loginMethod {
            case .key: method = "key"
            case .token: method = "token"
            case .noKey: method = "browser"
            }
            return EngineerRow(
                id: engineer.id, login: engineer.login, role: engineer.role.rawValue, managerID: engineer.managerID,
                managerLogin: engineer.managerID.flatMap { logins[$0] }, groups: engineer.groups, disabled: engineer.disabledAt != nil,
                twoFactor: credentials.totpSecret != nil, password: credentials.passwordHash != nil, loginMethod: method, createdAt: engineer.createdAt)
        }
    }

    func engineers(_ caller: AdminCaller) async throws -> WebReply {
        try self.require(.readEngineers, caller)
        let (store, companyID) = (self.store, caller.companyID)
        let all = try await self.run { try store.engineers(companyID: companyID) }
        var visible = all
        if let me = caller.engineer, me.role == .manager {
            visible = all.filter { $0.managerID == me.id || $0.id == me.id }
        }
        return .json(["engineers": try await self.engineerRows(visible, all: all)])
    }

    private struct InviteForm: Decodable {
        let login: String
        let role: String?
        let managerID: String?
    }

    private struct Invited: Encodable {
        let engineer: EngineerRow
        let signInLink: String
        let expiresAt: Date
    }

    func invite(_ caller: AdminCaller, _ request: WebRequest) async throws -> WebReply {
        try self.require(.manageEngineers, caller)
        let form = try WebApplication.decode(InviteForm.self, request)
        let role = try AccountRole(parsing: form.role ?? "engineer")
        guard role != .operator else {
            throw WebFailure(.forbidden, "operators are made by the relay's operator (`relay-server engineer add --role operator`), not by a company")
        }
        try Self.refuseTokenGrantingAdmin(caller, role: role)
        let (store, companyID, actor, now) = (self.store, caller.companyID, caller.actor, self.relay.now())
        let login = form.login.trimmingCharacters(in: .whitespacesAndNewlines)
        if try await self.run({ try store.engineers(companyID: companyID).contains { $0.login == login } }) {
            throw WebFailure(
                .conflict, "someone in your company already has the login \"\(login)\"; choose another, or give them a new sign-in link from their row")
        }
        let baseURL = "https://" + (request.headers.first(name: "Host") ?? "localhost")
        // The manager is checked before anyone is added, so a refused invitation adds no one.
        if let managerID = form.managerID, !managerID.isEmpty {
            let manager = try await self.run { try store.engineers(companyID: companyID).first { $0.id == managerID } }
            guard let manager else { throw WebFailure(.notFound, "no manager with id \(managerID) in your company; reload the engineers list") }
            guard manager.role == .manager else {
                throw WebFailure(.badRequest, "\(manager.login) is not a manager; make them one first (their role), then assign engineers to them")
            }
        }
        let (engineer, link) = try await self.run {
            var engineer = try store.addEngineer(companyID: companyID, login: form.login, publicKey: nil, actor: actor)
            if role != .engineer { engineer = try store.setRole(engineerID: engineer.id, role: role, actor: actor) }
            if let managerID = form.managerID, !managerID.isEmpty {
                engineer = try store.setManager(engineerID: engineer.id, managerID: managerID, actor: actor)
            }
            let link = try IssuedSignInLink.issue(for: engineer.id, baseURL: baseURL, store: store, actor: actor, now: now)
            return (engineer, link)
        }
        let all = try await self.run { try store.engineers(companyID: companyID) }
        let row = try await self.engineerRows([engineer], all: all)[0]
        return .json(Invited(engineer: row, signInLink: link.url, expiresAt: link.expiresAt))
    }

    private struct EngineerChange: Decodable {
        let id: String
        let role: String?
        let managerID: String?
        let groups: [String]?
    }

    func changeEngineer(_ caller: AdminCaller, _ request: WebRequest, action: String) async throws -> WebReply {
        try self.require(.manageEngineers, caller)
        let form = try WebApplication.decode(EngineerChange.self, request)
        let (store, companyID, actor, now) = (self.store, caller.companyID, caller.actor, self.relay.now())
        let all = try await self.run { try store.engineers(companyID: companyID) }
        guard let target = all.first(where: { $0.id == form.id }) else {
            throw WebFailure(.notFound, "no engineer with id \(form.id) in your company; reload the engineers list")
        }
        // An admin keeps their own access: another admin changes it if need be.
        if target.id == caller.engineer?.id, ["role", "disable", "remove"].contains(action) {
            throw WebFailure(.conflict, "you cannot \(action == "role" ? "change your own role" : action + " yourself"); ask another admin of your company")
        }
        if target.role == .operator {
            throw WebFailure(.forbidden, "\(target.login) is the relay's operator; only the relay's operator changes operators")
        }
        // A token must not reach an admin's account: a new link or a reset would hand it over.
        if target.role == .admin, ["link", "reset-totp", "role", "disable", "remove"].contains(action) {
            try Self.refuseTokenGrantingAdmin(caller, role: .admin)
        }
        let changed: Engineer
        switch action {
        case "role":
            let role = try AccountRole(parsing: form.role ?? "")
            guard role != .operator else { throw WebFailure(.forbidden, "operators are made by the relay's operator, not by a company") }
            try Self.refuseTokenGrantingAdmin(caller, role: role)
            changed = try await self.run { try store.setRole(engineerID: target.id, role: role, actor: actor) }
        case "manager":
            let managerID = form.managerID.flatMap { $0.isEmpty ? nil : $0 }
            changed = try await self.run { try store.setManager(engineerID: target.id, managerID: managerID, actor: actor) }
        case "groups":
            changed = try await self.run { try store.setManagerGroups(engineerID: target.id, groups: form.groups ?? [], actor: actor) }
        case "disable", "enable":
            changed = try await self.run { try store.setDisabled(engineerID: target.id, disabled: action == "disable", actor: actor) }
            if action == "disable" { self.endRevokedSessions() }
        case "reset-totp":
            try await self.run { try store.resetTwoFactor(engineerID: target.id, actor: actor) }
            changed = target
        case "link":
            let baseURL = "https://" + (request.headers.first(name: "Host") ?? "localhost")
            let link = try await self.run { try IssuedSignInLink.issue(for: target.id, baseURL: baseURL, store: store, actor: actor, now: now) }
            return .json(["signInLink": link.url, "expiresAt": iso8601(link.expiresAt)])
        case "remove":
            try await self.run { try store.removeEngineer(id: target.id, actor: actor) }
            self.endRevokedSessions()
            return .json([String: String]())
        default:
            throw WebFailure(.notFound, "there is no engineers/\(action) in the admin API; docs/admin-openapi.yaml lists the routes")
        }
        let refreshed = try await self.run { try store.engineers(companyID: companyID) }
        let row = try await self.engineerRows([refreshed.first { $0.id == changed.id } ?? changed], all: refreshed)[0]
        return .json(["engineer": row])
    }
}
