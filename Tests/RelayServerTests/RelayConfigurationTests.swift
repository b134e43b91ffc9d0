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
}
