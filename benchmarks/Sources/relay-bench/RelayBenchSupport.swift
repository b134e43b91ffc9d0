// Support for `relay-bench relay`: child processes (relay-server, haproxy, openssl), TLS
// material generated at run time in a temporary directory, /proc readings, and small
// concurrency helpers. Nothing here writes into the repository.

import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Processes

/// Runs a tool to completion and returns its standard output; throws on a non-zero exit.
@discardableResult
func runTool(_ executable: String, _ arguments: [String], stdin: String? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    if stdin == nil { process.standardInput = FileHandle.nullDevice }
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchError(
            "\(executable) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus): \(String(decoding: errorData, as: UTF8.self))")
    }
    return String(decoding: data, as: UTF8.self)
}

/// Finds an executable on PATH.
func which(_ name: String) -> String? {
    if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
    let directories: [String] = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
    for directory in directories {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// A long-running child (relay-server, haproxy) whose output goes to a log file.
final class ChildProcess {
    let process = Process()
    let name: String
    let logPath: String

    init(name: String, executable: String, arguments: [String], logPath: String) throws {
        self.name = name
        self.logPath = logPath
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
            throw BenchError("cannot create \(name)'s log file \(logPath); check that its folder exists and is writable")
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        self.process.executableURL = URL(fileURLWithPath: executable)
        self.process.arguments = arguments
        self.process.standardOutput = log
        self.process.standardError = log
        self.process.standardInput = FileHandle.nullDevice
        try self.process.run()
    }

    var pid: Int32 { self.process.processIdentifier }

    func stop() {
        guard self.process.isRunning else { return }
        kill(self.pid, SIGTERM)
        for _ in 0..<50 where self.process.isRunning { usleep(100_000) }
        if self.process.isRunning { kill(self.pid, SIGKILL) }
        self.process.waitUntilExit()
    }

    var logTail: String {
        guard let text = try? String(contentsOfFile: self.logPath, encoding: .utf8) else { return "" }
        return text.split(separator: "\n").suffix(15).joined(separator: "\n")
    }
}

// MARK: - /proc

/// user + system CPU seconds of a process, from /proc/PID/stat (fields 14 and 15).
func processCPUSeconds(pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return .nan }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// A "Vm..." line of /proc/PID/status in KiB (VmRSS, VmHWM).
func processStatusKiB(pid: Int32, field: String = "VmRSS") -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
    }
    return -1
}

func openFileDescriptors(pid: Int32) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
}

/// Raises this process's soft RLIMIT_NOFILE to the hard limit; children inherit it.
func raiseFileDescriptorLimit() -> (soft: Int, hard: Int) {
    var limit = rlimit()
    #if canImport(Glibc)
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    getrlimit(resource, &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(resource, &limit)
    getrlimit(resource, &limit)
    return (Int(limit.rlim_cur), Int(limit.rlim_max))
}

/// A free loopback TCP port (bind to port 0, read it, close).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw BenchError("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw BenchError("bind() failed") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Waits until something accepts TCP connections on 127.0.0.1:port.
func waitForListener(port: Int, timeout: Double, child: ChildProcess) async throws {
    let deadline = ContinuousClock.now + .seconds(timeout)
    while ContinuousClock.now < deadline {
        guard child.process.isRunning else { throw BenchError("\(child.name) exited early:\n\(child.logTail)") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        close(fd)
        if connected == 0 { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw BenchError("\(child.name) did not listen on port \(port) within \(timeout) s:\n\(child.logTail)")
}

// MARK: - TLS material

/// An ECDSA P-256 self-signed certificate and key in a temporary directory.
struct TLSMaterial {
    var directory: String
    var certificatePath: String
    var keyPath: String
    /// Certificate followed by key, the form haproxy's `crt` takes.
    var combinedPath: String
    var fingerprint: String

    static func generate(in directory: String) throws -> TLSMaterial {
        guard let openssl = which("openssl") else { throw BenchError("openssl is not installed") }
        let certificate = "\(directory)/cert.pem"
        let key = "\(directory)/key.pem"
        try runTool(
            openssl,
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", certificate, "-days", "2", "-subj", "/CN=relay-bench.invalid",
                "-addext", "subjectAltName=DNS:localhost",
            ])
        let combined = "\(directory)/combined.pem"
        let text = try String(contentsOfFile: certificate, encoding: .utf8) + String(contentsOfFile: key, encoding: .utf8)
        try text.write(toFile: combined, atomically: true, encoding: .utf8)
        chmod(key, 0o600)
        chmod(combined, 0o600)
        let output = try runTool(openssl, ["x509", "-in", certificate, "-noout", "-fingerprint", "-sha256"])
        guard let equals = output.firstIndex(of: "=") else { throw BenchError("cannot read the fingerprint: \(output)") }
        let fingerprint = output[output.index(after: equals)...].filter { $0.isHexDigit }
        return TLSMaterial(directory: directory, certificatePath: certificate, keyPath: key, combinedPath: combined, fingerprint: String(fingerprint))
    }
}

/// What a TLS 1.3 server on 127.0.0.1:port negotiates with a client that offers the
/// TLS 1.3 suites in BoringSSL's order (AES-128-GCM first), as the relay's clients do.
func negotiatedCipher(port: Int, alpn: String?) -> String {
    guard let openssl = which("openssl") else { return "unknown" }
    var arguments = [
        "s_client", "-connect", "127.0.0.1:\(port)", "-tls1_3",
        "-ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
    ]
    if let alpn { arguments += ["-alpn", alpn] }
    guard let output = try? runTool(openssl, arguments) else { return "unknown" }
    for line in output.split(separator: "\n") where line.contains("Cipher is") {
        return String(line.split(separator: " ").last ?? "unknown")
    }
    return "unknown"
}

// MARK: - Concurrency helpers

/// A counter shared by many tasks.
final class Counter: Sendable {
    private let box = NIOLockedValueBox<Int>(0)
    func add(_ value: Int) { self.box.withLockedValue { $0 &+= value } }
    var value: Int { self.box.withLockedValue { $0 } }
}

/// A flag shared by many tasks.
final class StopFlag: Sendable {
    private let box = NIOLockedValueBox(false)
    func set() { self.box.withLockedValue { $0 = true } }
    var isSet: Bool { self.box.withLockedValue { $0 } }
}

/// The first error message seen, and how many.
final class ErrorLog: Sendable {
    private let box = NIOLockedValueBox<(count: Int, first: String?)>((0, nil))
    func record(_ error: any Error) {
        self.box.withLockedValue { state in
            state.count += 1
            if state.first == nil { state.first = "\(error)" }
        }
    }
    var count: Int { self.box.withLockedValue { $0.count } }
    var first: String? { self.box.withLockedValue { $0.first } }
}

/// A one-shot signal that tasks can wait for (no cancellation: always fire it).
final class Signal: Sendable {
    private let state = NIOLockedValueBox<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func fire() {
        let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.fired = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let fired = self.state.withLockedValue { state -> Bool in
                if state.fired { return true }
                state.waiters.append(continuation)
                return false
            }
            if fired { continuation.resume() }
        }
    }
}

/// p-th percentile (0...100) of sorted values, nearest rank.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank - 1, 0), sorted.count - 1)]
}

/// A progress line on standard error (the tables and JSON go to standard output).
func progress(_ text: String) {
    FileHandle.standardError.write(Data("[relay-bench] \(text)\n".utf8))
}
