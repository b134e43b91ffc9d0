import ArgumentParser
import Foundation
import RelayClient
import RelayWire

@main
struct RelayAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay-agent",
        abstract: "SupportRelay's agent: share this PC (`host`) or reach one (`view`) through a relay.",
        discussion: """
            Both sides connect to the relay over TLS and trust it by --ca (the CA that issued its \
            certificate) or --fingerprint (the SHA-256 fingerprint relay-server prints at start); \
            an unknown certificate is always refused. See docs/OPERATIONS.md.
            """,
        version: "0.1.0",
        subcommands: [HostCommand.self, ViewCommand.self, KeygenCommand.self]
    )
}

/// Where the relay is and how to trust it.
struct RelayOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The relay, e.g. relay.example.com:7443.", valueName: "HOST:PORT"))
    var relay: String

    @Option(help: ArgumentHelp("Trust the relay's certificate if this CA issued it.", valueName: "PEM"))
    var ca: String?

    @Option(help: ArgumentHelp("Trust exactly the relay certificate with this SHA-256 fingerprint.", valueName: "SHA256"))
    var fingerprint: String?

    func validate() throws {
        switch (self.ca, self.fingerprint) {
        case (nil, nil):
            throw ValidationError("say how to trust the relay: --fingerprint (printed by relay-server at start) or --ca PEM")
        case (.some, .some):
            throw ValidationError("give --ca or --fingerprint, not both")
        case (nil, let fingerprint?) where RelayTrust.normalizedFingerprint(fingerprint) == nil:
            throw ValidationError("--fingerprint must be the 64 hex digits relay-server printed (colons allowed)")
        default:
            break
        }
        _ = try self.address()
    }

    func address() throws -> RelayAddress {
        do {
            return try RelayAddress(parsing: self.relay)
        } catch {
            throw ValidationError("--relay: \(error.message)")
        }
    }

    var trust: RelayTrust {
        if let ca { return .certificateAuthorityFile(ca) }
        return .fingerprint(self.fingerprint ?? "")
    }
}

/// Prints a line at once, even when stdout is a pipe.
func say(_ line: String) {
    print(line)
    fflush(nil)
}

/// Prints a warning on standard error.
func warn(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Exit with the error's message and a code scripts can tell apart.
struct AgentFailure: Error, CustomStringConvertible {
    let description: String
}

/// Error messages can quote the relay or the peer: they are printed without control
/// characters too (PROTOCOL.md §5.2.7).
func fail(_ error: any Error) -> AgentFailure {
    if let error = error as? RelayClientError { return AgentFailure(description: PeerText.printable(error.message)) }
    return AgentFailure(description: PeerText.printable("\(error)"))
}
