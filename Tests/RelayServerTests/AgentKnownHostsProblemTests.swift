import Foundation
import RelayClient
import RelayTestSupport
import Testing

@testable import RelayServer

/// Found by an outside review of issue 12: EndToEnd.checkPin turns every known_hosts failure into "the host's key
/// is not the one pinned for it", and tells the host (through the relay) that its key was
/// refused, although the host's key was never compared.
@Suite(.timeLimit(.minutes(2))) struct AgentKnownHostsProblemTests {
    @Test func aKnownHostsFileOthersCanChangeIsNotReportedAsAChangedHostKey() async throws {
        try await AgentEndToEndEncryptionTests.withRelay { relay, caFile in
            let hostConfig = AgentEndToEndEncryptionTests.Folder()
            let viewerConfig = AgentEndToEndEncryptionTests.Folder()
            try AgentEndToEndEncryptionTests.hostKey(relay, in: hostConfig)
            try AgentEndToEndEncryptionTests.engineer(relay, in: viewerConfig, login: "kim.minji.key")
            // The viewer's known_hosts exists but is group- and world-writable, and pins nothing.
            let folder = "\(viewerConfig.path)/supportrelay"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let knownHosts = "\(folder)/known_hosts"
            _ = FileManager.default.createFile(atPath: knownHosts, contents: Data(), attributes: [.posixPermissions: 0o666])
            try FileManager.default.setAttributes([.posixPermissions: 0o666], ofItemAtPath: knownHosts)

            let result = try await AgentEndToEndEncryptionTests.session(relay, caFile: caFile, host: hostConfig, viewer: viewerConfig)
            #expect(result.viewerStatus != 0, "\(result.viewer)")
            #expect(result.viewer.contains("chmod 600"), "the viewer did not say how to fix known_hosts: \(result.viewer)")
            #expect(
                !result.viewer.contains("is not the one pinned for it"),
                "a known_hosts permission problem was reported as a changed host key: \(result.viewer)")
            #expect(
                !result.host.contains("refused the host's key"),
                "the host was told its key was refused although it was never compared: \(result.host)")
        }
    }
}
