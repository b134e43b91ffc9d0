public import Foundation

/// A private Xvfb server for one test, started the way scripts/lib/xvfb.sh starts one:
/// Xvfb picks a free display number itself and reports it (`-displayfd`), so parallel
/// tests never race for a number, as scanning the lock files in /tmp did.
///
/// Shared by the test targets through RelayTestSupport (the one Xvfb launcher of the tests).
public final class XvfbDisplay: Sendable {
    public static let path = "/usr/bin/Xvfb"
    public static let isInstalled = FileManager.default.isExecutableFile(atPath: XvfbDisplay.path)

    /// The display name to connect to, `:N`.
    public let name: String
    public let number: Int
    public let server: Process

    private init(number: Int, server: Process) {
        self.name = ":\(number)"
        self.number = number
        self.server = server
    }

    /// Starts Xvfb with one `width`×`height` screen of `depth` bits and returns once it
    /// listens (Xvfb writes the display number only then).
    public static func start(width: Int, height: Int, depth: Int = 24) throws -> XvfbDisplay {
        let server = Process()
        server.executableURL = URL(fileURLWithPath: Self.path)
        // -noreset: Xvfb otherwise resets whenever its last client disconnects, and a
        // client connecting during the reset is refused. -nolisten tcp: local clients only.
        server.arguments = ["-displayfd", "1", "-screen", "0", "\(width)x\(height)x\(depth)", "-nolisten", "tcp", "-noreset"]
        let announcement = Pipe()
        server.standardOutput = announcement
        server.standardError = FileHandle.nullDevice
        try server.run()
        var announced = Data()
        while !announced.contains(UInt8(ascii: "\n")) {
            let chunk = announcement.fileHandleForReading.availableData
            guard !chunk.isEmpty else { break }  // Xvfb exited without a display
            announced.append(chunk)
        }
        guard let number = Int(String(decoding: announced, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
            throw XvfbError(
                description: "Xvfb did not start; run '\(Self.path) -displayfd 1 -screen 0 \(width)x\(height)x\(depth)' by hand to see why"
            )
        }
        return XvfbDisplay(number: number, server: server)
    }

    /// Kills the server outright and removes what it leaves behind. SIGKILL: on SIGTERM
    /// Xvfb waits for its clients to go, and the child inherits the test thread's blocked
    /// signals, SIGTERM included.
    public func stop() {
        kill(self.server.processIdentifier, SIGKILL)
        self.server.waitUntilExit()
        unlink("/tmp/.X11-unix/X\(self.number)")
        unlink("/tmp/.X\(self.number)-lock")
    }
}

public struct XvfbError: Error, CustomStringConvertible {
    public let description: String
}
