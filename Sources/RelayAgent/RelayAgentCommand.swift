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
        subcommands: [HostCommand.self, ViewCommand.self]
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

/// Describes what a peer message does, for the console.
func describe(_ message: RelayMessage) -> String {
    switch message {
    case .key(let key):
        let what = Keysym.scalar(for: key.keysym).map { "\"\(String(Character($0)).debugDescription.dropFirst().dropLast())\"" } ?? String(format: "0x%X", key.keysym)
        return "key \(key.isDown ? "down" : "up  ") \(what)"
    case .pointer(let pointer):
        return "pointer \(pointer.x),\(pointer.y) buttons \(pointer.buttons.rawValue)"
    case .clipboard(let clipboard):
        return "clipboard: \(clipboard.text)"
    case .screenInit(let screen):
        return "screen \(screen.width)×\(screen.height) \"\(screen.name)\""
    case .tileUpdate(let update):
        return "screen update, \(update.body.readableBytes) bytes"
    case .updateRequest(let request):
        return "update request \(request.requestID)"
    default:
        return message.type.name
    }
}

/// Exit with the error's message and a code scripts can tell apart.
struct AgentFailure: Error, CustomStringConvertible {
    let description: String
}

func fail(_ error: any Error) -> AgentFailure {
    if let error = error as? RelayClientError { return AgentFailure(description: error.message) }
    return AgentFailure(description: "\(error)")
}

/// Prints the other side's messages until the session ends; answers the relay's Pings.
func printPeerMessages(_ connection: RelayConnection) async throws {
    while true {
        guard let message = try await connection.receive() else {
            say("Session ended: the relay closed the connection.")
            return
        }
        switch message {
        case .bye(let bye):
            say("Session ended: \(bye.text)")
            return
        case .ping(let ping):
            try await connection.send(.pong(Pong(nonce: ping.nonce)))
        case .pong:
            continue
        default:
            say("  \(describe(message))")
        }
    }
}
