import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import RelayStore
import RelayTestSupport
import Testing

@testable import RelayServer

/// The admin API over real HTTPS (docs/admin-openapi.yaml): metrics and health, and the
/// per-company usage export with its authentication, validation and rate limits.
@Suite struct AdminAPITests {
    /// Issue 11 item 5: statuses came from matching strings in each handler; now one
    /// mapping decides, by the store error's kind, and the JSON body is Foundation's.
    @Test func errorsMapToStatusesInOnePlace() throws {
        var logger = Logger(label: "admin-errors")
        logger.logLevel = .critical
        func status(_ error: any Error) -> Int { AdminAPIError(error, logger: logger).status.code }
        #expect(status(StoreError(.invalidInput, "bad")) == 400)
        #expect(status(StoreError(.notFound, "gone")) == 404)
        #expect(status(StoreError(.conflict, "twice")) == 409)
        #expect(status(StoreError(.unavailable, "locked")) == 503)
        #expect(status(CancellationError()) == 500)
        #expect(status(AdminAPIError.tooManyRequests(.milliseconds(1_200), "slow down")) == 429)
        #expect(AdminAPIError.tooManyRequests(.milliseconds(1_200), "slow down").message == "slow down; retry after 2 s")
        // A store's message reaches the client; another error's detail does not.
        #expect(AdminAPIError(StoreError(.invalidInput, "from \"x\" is not a valid date"), logger: logger).message == "from \"x\" is not a valid date")
        #expect(!AdminAPIError(StoreError(.unavailable, "/var/lib/relay/relay.sqlite is locked"), logger: logger).message.contains("/var/lib"))

        let tricky = "quote \" backslash \\ newline \n bell \u{7} 한국어 </script>"
        let body = try AdminAPIError(.badRequest, "bad_request", tricky).jsonBody()
        #expect(body.last == 0x0A)
        #expect(String(decoding: body, as: UTF8.self).hasPrefix(#"{"error":"bad_request","message":"#))
        let object = try #require(try JSONSerialization.jsonObject(with: body) as? [String: String])
        #expect(object == ["error": "bad_request", "message": tricky])
    }

    static func seed(_ relay: TestRelay, company: String, count: Int, prefix: String, hostName: String = "회계팀 PC-03") throws {
        var batch = UsageBatch()
        let start = StoreFixture.milliseconds("2026-11-01T00:00:00+09:00")
        for index in 0..<count {
            batch.opened.append(
                UsageRecord(
                    id: "\(prefix)-\(String(format: "%07d", index))", companyID: company, engineerLogin: "김민지", hostID: "ho-\(prefix)",
                    hostName: hostName, mode: .unattended, startedAt: start + Int64(index) * 1000, endedAt: start + Int64(index) * 1000 + 61_000,
                    counters: UsageCounters(bytesToViewer: 1_000_000, bytesToHost: 2_000, framesToViewer: 300, framesToHost: 40), endReason: .normal,
                    viewerAddress: "203.0.113.7:50123", hostAddress: "198.51.100.4:443", relayNode: "test-node"
                ))
            if batch.opened.count == 10_000 {
                try relay.store.write(batch)
                batch = UsageBatch()
            }
        }
        try relay.store.write(batch)
    }

    static func get(_ relay: TestRelay, _ path: String, token: String? = nil, discardBody: Bool = false) async throws -> AdminResponse {
        try await AdminClient.get(port: relay.adminPort, path: path, token: token, trust: relay.authority.certificate, discardBody: discardBody)
    }

    @Test func metricsAndHealthOnTheAdminPort() async throws {
        try await TestRelay.with { relay in
            let health = try await Self.get(relay, "/healthz")
            #expect(health.status == .ok)
            #expect(health.text == "ok\n")
            let metrics = try await Self.get(relay, "/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.text.contains("relay_connections_open"))
            #expect(metrics.headers.first(name: "Content-Type")?.hasPrefix("text/plain") == true)
            #expect(try await Self.get(relay, "/nothing").status == .notFound)
        }
    }

    @Test func tokensAreRequiredAndChecked() async throws {
        try await TestRelay.with { relay in
            let missing = try await Self.get(relay, "/v1/usage?from=2026-11-01&to=2026-11-30")
            #expect(missing.status == .unauthorized)
            #expect(missing.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
            #expect(missing.text.contains("missing_token"))
            let wrong = try await Self.get(relay, "/v1/usage?from=2026-11-01&to=2026-11-30", token: relay.acme.id + ".not-the-secret")
            #expect(wrong.status == .unauthorized)
            #expect(wrong.headers.first(name: "WWW-Authenticate")?.contains("invalid_token") == true)
            // An engineer token is not an admin token.
            #expect(try await Self.get(relay, "/v1/usage?from=2026-11-01&to=2026-11-30", token: relay.acme.engineerToken).status == .unauthorized)
            #expect(relay.metric("relay_auth_failures_total") == 2)
        }
    }

    @Test func badRangesAreRefusedWithAMessage() async throws {
        try await TestRelay.with { relay in
            let token = relay.acme.adminToken
            for (query, words) in [
                ("from=2026-11-30&to=2026-11-01", "is not before"),
                ("from=2026-11-01", "from and to are required"),
                ("from=2026-02-30&to=2026-03-01", "no such day"),
                ("from=2026-11-01&to=2026-11-30&format=xlsx", "unknown format"),
                ("from=2026-11-01&to=2026-11-30&tz=Mars/Base", "unknown time zone"),
                ("from=2026-11-01&to=2026-11-30&format=jsonl&bom=true", "for CSV only"),
            ] {
                let response = try await Self.get(relay, "/v1/usage?" + query, token: token)
                #expect(response.status == .badRequest, "\(query)")
                #expect(response.text.contains(words), "\(query): \(response.text)")
            }
        }
    }

    /// No query with company A's token ever returns a row of company B.
    @Test func oneCompanysTokenNeverSeesAnotherCompanysRows() async throws {
        try await TestRelay.with { relay in
            try Self.seed(relay, company: relay.acme.id, count: 1_500, prefix: "acme", hostName: "ACME-ONLY-호스트")
            try Self.seed(relay, company: relay.globex.id, count: 1_500, prefix: "globex", hostName: "GLOBEX-ONLY-host")
            for (company, other) in [(relay.acme, relay.globex), (relay.globex, relay.acme)] {
                for query in [
                    "from=2026-11-01&to=2026-11-30&tz=Asia/Seoul", "from=1970-01-01&to=9999-12-31&format=jsonl",
                    "from=2026-10-31T15:00:00Z&to=2026-11-01T00:10:00%2B09:00&tz=Asia/Seoul",
                ] {
                    let response = try await Self.get(relay, "/v1/usage?" + query, token: company.adminToken)
                    #expect(response.status == .ok)
                    #expect(response.text.contains(company.id))
                    #expect(!response.text.contains(other.id))
                    #expect(!response.text.contains(company.id == relay.acme.id ? "GLOBEX-ONLY" : "ACME-ONLY"))
                }
            }
            // The whole month of November in Seoul: all 1,500 rows of ACME and the header.
            let month = try await Self.get(relay, "/v1/usage?from=2026-11-01&to=2026-11-30&tz=Asia/Seoul&format=csv&bom=true", token: relay.acme.adminToken)
            #expect(Array(month.body.prefix(3)) == [0xEF, 0xBB, 0xBF])
            #expect(month.lines == 1_501)
            #expect(month.headers.first(name: "Content-Type")?.hasPrefix("text/csv") == true)
            #expect(month.headers.first(name: "Content-Disposition")?.contains("attachment") == true)
            let lines = month.text.split(separator: "\r\n")
            #expect(
                lines[0].hasSuffix(
                    "session_id,company_id,engineer,host_id,host_name,mode,started_at,ended_at,duration_s,bytes_to_viewer,bytes_to_host,frames_to_viewer,frames_to_host,end_reason,viewer_addr,host_addr,relay_node,viewer_client"
                ))
            #expect(
                lines[1]
                    == "acme-0000000,\(relay.acme.id),김민지,ho-acme,ACME-ONLY-호스트,unattended,2026-11-01T00:00:00+09:00,2026-11-01T00:01:01+09:00,61,1000000,2000,300,40,normal,203.0.113.7:50123,198.51.100.4:443,test-node,agent"
            )
            // Each export leaves an audit entry with the count.
            let logged = await eventually { (try? relay.store.auditLog(limit: 1).first?.detail?.hasPrefix("rows=1500 format=csv")) == true }
            #expect(logged)
            #expect(try relay.store.auditLog(limit: 1).first?.actor == "api:\(relay.acme.id)")
        }
    }

    @Test func floodingIsAnsweredWith429() async throws {
        try await TestRelay.with({
            $0.adminRequestBurst = 3
            $0.adminRequestsPerMinute = 1
        }) { relay in
            var statuses: [HTTPResponseStatus] = []
            for _ in 0..<5 {
                statuses.append(try await Self.get(relay, "/v1/usage?from=2026-11-01&to=2026-11-02", token: relay.acme.adminToken).status)
            }
            #expect(statuses == [.ok, .ok, .ok, .tooManyRequests, .tooManyRequests])
            let limited = try await Self.get(relay, "/v1/usage?from=2026-11-01&to=2026-11-02", token: relay.acme.adminToken)
            #expect(limited.status == .tooManyRequests)
            #expect(Int(limited.headers.first(name: "Retry-After") ?? "") ?? 0 >= 1)
            // Health checks are not limited.
            #expect(try await Self.get(relay, "/healthz").status == .ok)
        }
    }

    @Test func failedTokensAreThrottled() async throws {
        // A 60 s first block, so that it cannot run out mid-test on a loaded machine.
        try await TestRelay.with({
            $0.adminRequestBurst = 100
            $0.adminRequestsPerMinute = 100
            $0.sourcePenalties.firstBlock = .seconds(60)
        }) { relay in
            var statuses: [HTTPResponseStatus] = []
            while statuses.count < 12, statuses.last != .tooManyRequests {
                statuses.append(try await Self.get(relay, "/v1/usage?from=2026-11-01&to=2026-11-02", token: relay.acme.id + ".guess").status)
            }
            // Five free failures a minute, then the address is blocked — even with the right token.
            #expect(Array(statuses.prefix(6)) == Array(repeating: .unauthorized, count: 6))
            #expect(statuses.last == .tooManyRequests)
            #expect(statuses.count == 7)
            // The right token right after is refused too while the block lasts.
            let right = try await Self.get(relay, "/v1/usage?from=2026-11-01&to=2026-11-02", token: relay.acme.adminToken).status
            #expect(right == .tooManyRequests)
        }
    }

    /// 200,000 rows stream out in bounded writes; the relay never holds the export.
    @Test func largeExportsStreamInFlatMemory() async throws {
        try await TestRelay.with({ $0.adminRequestBurst = 100 }) { relay in
            try Self.seed(relay, company: relay.acme.id, count: 200_000, prefix: "big")
            let before = Self.peakResidentBytes()
            let response = try await Self.get(
                relay, "/v1/usage?from=2026-11-01&to=2026-12-31&format=jsonl&tz=Asia/Seoul", token: relay.acme.adminToken, discardBody: true)
            let growth = Self.peakResidentBytes() - before
            #expect(response.status == .ok)
            #expect(response.lines == 200_000)
            #expect(response.headers.first(name: "Content-Length") == nil)
            // Writes of about 32 KiB (one page of rows may overshoot by one row).
            #expect(response.largestChunk <= 64 * 1024)
            #expect(response.bodyBytes > 60_000_000)
            // The body is over 60 MB; the process peak grew less than the body, so it was
            // never held whole. (The peak is the test process's, shared with the tests that
            // run in parallel, so the bound is loose; `relay-bench store` measures the
            // export alone in a child process: flat at about 33 MiB for 1M rows.)
            #expect(growth < response.bodyBytes, "peak resident memory grew by \(growth) bytes for a \(response.bodyBytes)-byte body")
            #expect(response.text.hasSuffix("\"relay_node\":\"test-node\",\"viewer_client\":\"agent\"}\n"))
        }
    }

    static func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }
}
