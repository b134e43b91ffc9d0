import Foundation
import NIOCore
import RelayStore

/// Security alerts and the webhook (item 7), and the operator's view of the relay.
extension AdminAPI {
    func alert(_ alert: SecurityAlert) {
        self.relay.alerts.raise(alert)
    }

    private struct AlertRow: Encodable {
        let id: Int64
        let at: Date
        let kind: String
        let subject: String
        let detail: String
    }

    private struct AlertPage: Encodable {
        let rows: [AlertRow]
        @Nullable var next: String?
    }

    func alerts(_ caller: AdminCaller, _ query: AdminQuery) async throws -> WebReply {
        try self.require(.manageAlerts, caller)
        let limit = try query.limit(default: Self.defaultPageSize, maximum: Self.maximumPageSize)
        let before = try query.before()
        let (store, companyID) = (self.store, caller.companyID)
        let alerts = try await self.run { try store.alerts(companyID: companyID, before: before, limit: limit + 1) }
        let rows = alerts.prefix(limit).map { AlertRow(id: $0.id ?? 0, at: $0.at, kind: $0.kind.rawValue, subject: $0.subject, detail: $0.detail) }
        return .json(AlertPage(rows: Array(rows), next: alerts.count > limit ? rows.last.map { String($0.id) } : nil))
    }

    private struct WebhookState: Encodable {
        @Nullable var url: String?
        @Nullable var lastDelivery: SecurityAlerts.Delivery?
    }

    func webhook(_ caller: AdminCaller) async throws -> WebReply {
        try self.require(.manageAlerts, caller)
        let (store, companyID) = (self.store, caller.companyID)
        let webhook = try await self.run { try store.webhook(companyID: companyID) }
        return .json(WebhookState(url: webhook?.url, lastDelivery: self.relay.alerts.lastDelivery(companyID: companyID)))
    }

    private struct WebhookForm: Decodable { let url: String }

    private struct WebhookSet: Encodable {
        @Nullable var url: String?
        @Nullable var secret: String?
    }

    func setWebhook(_ caller: AdminCaller, _ request: WebRequest) async throws -> WebReply {
        try self.require(.manageAlerts, caller)
        let form = try WebApplication.decode(WebhookForm.self, request)
        let url = form.url.trimmingCharacters(in: .whitespacesAndNewlines)
        if !url.isEmpty {
            do {
                _ = try WebhookTarget(url, allowLoopback: self.relay.configuration.webhookAllowLoopback)
            } catch let error as WebhookError {
                throw WebFailure(.badRequest, error.description)
            }
        }
        let (store, companyID, actor) = (self.store, caller.companyID, caller.actor)
        let webhook = try await self.run { try store.setWebhook(companyID: companyID, url: url.isEmpty ? nil : url, actor: actor) }
        return .json(WebhookSet(url: webhook?.url, secret: webhook?.secret))
    }

    func testWebhook(_ caller: AdminCaller) async throws -> WebReply {
        try self.require(.manageAlerts, caller)
        let (store, companyID) = (self.store, caller.companyID)
        guard let webhook = try await self.run({ try store.webhook(companyID: companyID) }) else {
            throw WebFailure(.conflict, "there is no webhook to test; save its URL first")
        }
        let delivery = await self.relay.alerts.test(companyID: companyID, webhook: webhook, actor: caller.actor)
        guard let status = delivery.status, (200..<300).contains(status) else {
            throw WebFailure(.badGateway, "the test did not reach the webhook: \(delivery.error ?? "no answer"); check its URL and that it answers 2xx")
        }
        return .json(["status": status])
    }

    // MARK: Operator

    private struct CompanyRow: Encodable {
        let id: String
        let name: String
        let engineers: Int
        let hosts: Int
        let hostsOnline: Int
        let sessionsLast30Days: Int
        let held: Bool
    }

    private struct RelayState: Encodable {
        let node: String
        let version: String
        let retention: [String: Int]
        let liveSessions: Int
        let companies: [CompanyRow]
    }

    func relayCounts(_ caller: AdminCaller) async throws -> WebReply {
        try self.require(.readRelay, caller)
        let store = self.store
        let since = self.relay.now().addingTimeInterval(-30 * 86_400)
        let counts = try await self.run { try store.companyCounts(sessionsSince: since) }
        let online = self.relay.pairing.withLockedValue { $0.onlineHostCounts() }
        let configuration = self.relay.configuration
        return .json(
            RelayState(
                node: configuration.nodeName, version: RelayServerCommand.configuration.version,
                retention: ["usageMonths": configuration.retention.usageMonths, "accessMonths": configuration.retention.accessLogMonths],
                liveSessions: self.relay.pairedSessions.count,
                companies: counts.map {
                    CompanyRow(
                        id: $0.id, name: $0.name, engineers: $0.engineers, hosts: $0.hosts, hostsOnline: online[$0.id] ?? 0,
                        sessionsLast30Days: $0.sessionsSince,
                        held: $0.held)
                }))
    }
}
