import Foundation
import RelayWire
import Testing

@testable import RelayServer

/// What `relay-server serve` accepts as configuration (OPERATIONS.md "Configuration").
@Suite struct RelayConfigurationTests {
    /// Applies `json` as a config file.
    static func apply(_ json: String, to configuration: inout RelayConfiguration) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("relay-config-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        try configuration.apply(configFile: path)
    }

    /// Issue 10 item 3: a limit below 64 KiB crashed every host agent; the relay refuses it.
    @Test func payloadLimitBelowTheProtocolMinimumIsRefused() throws {
        var configuration = RelayConfiguration()
        for tooSmall in [1024, 16 * 1024, Frame.minimumPayloadLimit - 1] {
            configuration.maximumPayloadLength = tooSmall
            let error = #expect(throws: (any Error).self) { try configuration.validate() }
            #expect("\(error.map { "\($0)" } ?? "")".contains("maximum_payload_bytes must be 65536"))
        }
        #expect(throws: (any Error).self) { try Self.apply(#"{"maximum_payload_bytes": 32768}"#, to: &configuration) }
        configuration.maximumPayloadLength = Frame.maximumEncodablePayloadLength + 1
        #expect(throws: (any Error).self) { try configuration.validate() }

        // The bounds themselves are fine.
        for fine in [Frame.minimumPayloadLimit, Frame.defaultMaximumPayloadLength, Frame.maximumEncodablePayloadLength] {
            configuration.maximumPayloadLength = fine
            try configuration.validate()
        }
        try Self.apply(#"{"maximum_payload_bytes": 65536}"#, to: &configuration)
        #expect(configuration.maximumPayloadLength == 65536)
    }

    /// The kind of the ``ConfigurationError`` `body` throws; nil for any other outcome.
    static func configurationErrorKind(_ body: () throws -> Void) -> ConfigurationError.Kind? {
        do {
            try body()
            return nil
        } catch let error as ConfigurationError {
            return error.kind
        } catch {
            return nil
        }
    }

    /// Issue 11 item 5: a bad config file, flag or certificate was a `StoreError`, as if
    /// the database had failed; now it is a ``ConfigurationError`` that says which.
    @Test func configurationMistakesAreConfigurationErrors() throws {
        func kind(_ json: String) -> ConfigurationError.Kind? {
            var configuration = RelayConfiguration()
            return Self.configurationErrorKind { try Self.apply(json, to: &configuration) }
        }
        #expect(kind(#"{"code_failure_limit": 20}"#) == .invalidValue)
        #expect(kind(#"{"idle_timout_seconds": 30}"#) == .invalidValue)
        #expect(kind(#"{"certificate": "/etc/relay/cert.pem"}"#) == .invalidValue)
        #expect(kind(#"{"maximum_payload_bytes": 10}"#) == .invalidValue)
        #expect(kind(#"{"listen": "relay.example.com"}"#) == .invalidValue)
        #expect(kind(#"{"heap_trim_seconds": -1}"#) == .invalidValue)
        #expect(kind(#"{"certificate_names": ["10.0.0.1"]}"#) == .invalidValue)
        // Retention is the store's rule, but a wrong value here is the config file's mistake.
        #expect(kind(#"{"usage_retention_months": 0}"#) == .invalidValue)
        #expect(kind(#"{"idle_timeout_seconds": "thirty"}"#) == .file)
        #expect(kind("not json") == .file)

        var configuration = RelayConfiguration()
        let missing = "/nonexistent/relay-\(UUID().uuidString).json"
        #expect(Self.configurationErrorKind { try configuration.apply(configFile: missing) } == .file)
        #expect(Self.configurationErrorKind { _ = try RelayTLS.load(certificatePath: missing, keyPath: missing) } == .file)

        // The messages still say what to do.
        do {
            try Self.apply(#"{"usage_retention_months": 0}"#, to: &configuration)
            Issue.record("a retention of 0 months was accepted")
        } catch let error as ConfigurationError {
            #expect(error.description == "usage_retention_months must be 1…1200 (12 is the one-year rule), got 0")
        }
    }
}
