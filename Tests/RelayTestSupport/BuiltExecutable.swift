public import Foundation

/// A program of this package (`relay-server`, `relay-agent`) as `swift build --build-tests`
/// leaves it beside the test bundle.
public enum BuiltExecutable {
    public static func url(_ name: String) throws -> URL {
        var candidates: [URL] = []
        let argument = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(argument.deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL)
        // Inside a bundle directory (…/SupportRelayPackageTests.xctest/Contents/MacOS/…) look further up.
        var directory = argument.deletingLastPathComponent()
        while directory.path != "/", directory.path.contains(".xctest") {
            directory = directory.deletingLastPathComponent()
            candidates.append(directory)
        }
        for candidate in candidates {
            let url = candidate.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw TestFailure("\(name) is not built beside the tests (looked in \(candidates.map(\.path))); run `swift build --build-tests` first")
    }

    /// Runs the program `name` with `arguments` (and `environment` added to this
    /// process's) to its end; returns its exit status, standard output and standard error.
    /// (Spawned with posix_spawn, not Foundation's Process: see ``SpawnedProgram``.)
    public static func run(
        _ name: String, _ arguments: [String], environment: [String: String] = [:]
    ) throws -> (status: Int32, output: String, errors: String) {
        let ran = try SpawnedProgram.run(
            path: try Self.url(name).path, arguments: arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 })
        return (ran.status, String(decoding: ran.output, as: UTF8.self), String(decoding: ran.errors, as: UTF8.self))
    }
}

/// Bytes from hex digits (`"0aff"`, or `"0a ff"` with spaces), as test vectors write them.
public func bytes(hex: String) -> [UInt8] {
    let digits = Array(hex.filter { !$0.isWhitespace })
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0..<$0 + 2]), radix: 16)! }
}
