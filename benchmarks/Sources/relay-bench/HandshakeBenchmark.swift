// `relay-bench handshake`: TLS 1.3 handshakes (ECDSA P-256 certificate) per CPU-second of
// relay-server beside haproxy, full and resumed, in one run.
//
// The load is a Python/OpenSSL driver (`handshakeDriver` below, written to the temporary
// directory and run with python3) in --clients worker processes, the same for both peers:
// each connection is TCP connect, TLS 1.3 handshake (ALPN supportrelay/1, the certificate
// verified), close. The relay closes a connection that completes TLS and says nothing
// after its handshake deadline; the driver closes first. haproxy (mode tcp) waits for the
// client's first bytes before it would connect a backend (`tcp-request inspect-delay`), as
// the relay waits for a Hello, so neither does more than TLS and the connection's life.
//
// Resumed: TLS 1.3 PSK with (EC)DHE from a session ticket. NIOSSL cannot offer a session
// from a client (no API; see docs/SECURITY.md "TLS session resumption"), hence OpenSSL as
// the client. BoringSSL sends the relay's tickets with its first write only, so each
// worker gets its ticket once, before the window, by sending a Hello (the relay answers
// HelloAck, the tickets before it), and then offers that ticket on every connection.
//
// CPU of relay-server and haproxy: utime + stime from /proc/PID/stat over the window.

import ArgumentParser
import Foundation
import NIOCore
import RelayClient
import RelayWire

#if canImport(Glibc)
import Glibc
#endif

struct HandshakeBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handshake",
        abstract: "TLS 1.3 handshakes per CPU-second of relay-server beside haproxy, full and resumed.",
        discussion: """
            Starts relay-server (--relay-binary) and haproxy on loopback with a freshly generated \
            ECDSA P-256 certificate (temporary directory, deleted afterwards) and drives both with \
            the same Python/OpenSSL client (python3 on PATH): --clients processes doing TCP \
            connect, TLS 1.3 handshake, close, for --seconds per case. Modes: full (no session \
            offered) and resumed (a session ticket offered; the driver counts what the server \
            resumed). Each of --runs runs measures every mode on both peers; the summary gives \
            the median and range of the peers' CPU per handshake and of their ratio.
            """
    )

    @Flag(name: .long, help: "Print one JSON object with all figures instead of tables.")
    var json = false

    @Option(name: .long, help: "Seconds of handshakes per case.")
    var seconds: Double = 10

    @Option(name: .long, help: "Runs; each measures every mode on both peers.")
    var runs: Int = 3

    @Option(
        name: .long,
        help: "Driver worker processes, each making handshakes one after another (4 keep both cores of a 2-core machine busy).")
    var clients: Int = 4

    @Option(name: .long, help: "Comma-separated modes: full, resumed.")
    var modes: String = "full,resumed"

    @Option(name: .customLong("relay-binary"), help: "The release relay-server binary.")
    var relayBinary: String = ".build/release/relay-server"

    @Option(name: .customLong("haproxy-threads"), help: "haproxy nbthread (relay-server uses one event loop per core).")
    var haproxyThreads: Int = System.coreCount

    var handshakeModes: [HandshakeMode] { self.modes.split(separator: ",").compactMap { HandshakeMode(rawValue: $0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard self.seconds > 0, self.runs > 0, self.clients > 0 else { throw ValidationError("--seconds, --runs and --clients must be positive") }
        guard !self.handshakeModes.isEmpty, self.handshakeModes.count == self.modes.split(separator: ",").count else {
            throw ValidationError("--modes takes full or resumed, comma-separated, e.g. full,resumed")
        }
    }

    func run() async throws {
        _ = raiseFileDescriptorLimit()
        guard FileManager.default.isExecutableFile(atPath: self.relayBinary) else {
            throw BenchError("no relay-server at \(self.relayBinary); build it with `swift build -c release --product relay-server` and pass --relay-binary")
        }
        guard let python = which("python3") else { throw BenchError("python3 is not installed; the handshake driver is a Python script") }
        let directory = NSTemporaryDirectory() + "relay-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tls = try TLSMaterial.generate(in: directory)
        let driver = "\(directory)/handshake_driver.py"
        try Self.handshakeDriver.write(toFile: driver, atomically: true, encoding: .utf8)
        // OpenSSL's client offers TLS_AES_256_GCM_SHA384 first, BoringSSL's (the agents')
        // TLS_AES_128_GCM_SHA256: the driver offers the agents' order, so that both peers
        // run the SHA-256 key schedule the relay runs for agents (each peer honours the order).
        let opensslConfiguration = "\(directory)/handshake-openssl.cnf"
        try Self.opensslConfiguration.write(toFile: opensslConfiguration, atomically: true, encoding: .utf8)
        let data = "\(directory)/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])

        let machine = MachineInfo.current
        var lines: [String] = [
            "relay-bench handshake",
            "command: " + (["relay-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
            "machine: \(machine.cpuModel), \(machine.cores) cores, \(machine.os)",
            "date:    \(machine.date)   load average: \(machine.loadAverage)",
        ]
        var notes: [String] = []

        let relay = try await RelayProcess.start(binary: self.relayBinary, data: data, tls: tls, directory: directory)
        defer { relay.child.stop() }
        let haproxy = try await HandshakeHAProxy.start(tls: tls, threads: self.haproxyThreads, directory: directory)
        defer { haproxy.child.stop() }
        progress("relay-server pid \(relay.child.pid) port \(relay.port), haproxy pid \(haproxy.child.pid) port \(haproxy.port)")
        notes.append(
            "the driver offers TLS 1.3 suites in BoringSSL's order (AES-128-GCM first), key share X25519 (OpenSSL 3's first offer); ECDSA P-256 certificate; the suite column is what the peer chose"
        )
        notes.append(
            "relay-server: \(System.coreCount) event loop threads, its relay-port TLS as served to agents (asks for an optional client certificate; the driver sends none); haproxy 2.6: nbthread \(self.haproxyThreads), mode tcp, inspect-delay (no backend connection), tune defaults"
        )
        // A Hello makes the relay write (HelloAck), and BoringSSL sends its tickets with the
        // first write (see the top of this file).
        let identity = AgentIdentity()
        let hello = try Frame(.hello(Hello(role: .viewer, capabilities: identity.capabilities, software: "relay-bench/handshake")))
        let poke = hello.bytes.readableBytesView.map { String(format: "%02x", $0) }.joined()

        // The peers' CPU while idle, for the reading: it is inside every window too.
        let idleStart = (relay: processCPUSeconds(pid: relay.child.pid), haproxy: processCPUSeconds(pid: haproxy.child.pid))
        try await Task.sleep(for: .seconds(2))
        notes.append(
            "idle CPU over 2 s before the runs: relay-server \(formatFixed((processCPUSeconds(pid: relay.child.pid) - idleStart.relay) * 1000, 0)) ms, haproxy \(formatFixed((processCPUSeconds(pid: haproxy.child.pid) - idleStart.haproxy) * 1000, 0)) ms"
        )

        var cases: [HandshakeCase] = []
        for run in 1...self.runs {
            for mode in self.handshakeModes {
                // Alternate which peer goes first, so neither always follows the other's load.
                let peers: [Peer] = run % 2 == 1 ? [.relay, .haproxy] : [.haproxy, .relay]
                for peer in peers {
                    progress("run \(run): \(mode.rawValue) handshakes, \(peer.rawValue)")
                    let pid = peer == .relay ? relay.child.pid : haproxy.child.pid
                    let port = peer == .relay ? relay.port : haproxy.port
                    var arguments = [
                        driver, "--port", "\(port)", "--ca", tls.certificatePath, "--alpn", RelayProtocol.alpnToken, "--seconds", "\(self.seconds)",
                        "--clients", "\(self.clients)", "--openssl-conf", opensslConfiguration,
                    ]
                    if mode == .resumed { arguments += ["--resume"] + (peer == .relay ? ["--poke", poke] : []) }
                    let before = processCPUSeconds(pid: pid)
                    let output = try runTool(python, arguments)
                    // Closes still in flight when the driver exits belong to the window.
                    try await Task.sleep(for: .milliseconds(300))
                    let peerCPU = processCPUSeconds(pid: pid) - before
                    let result = try HandshakeCase(run: run, mode: mode, peer: peer, driverOutput: output, peerCPU: peerCPU)
                    if let first = result.firstError {
                        notes.append("run \(run), \(mode.rawValue), \(peer.rawValue): \(result.errors) errors, first: \(first)")
                    }
                    cases.append(result)
                }
            }
        }

        var table = Table(columns: [
            .init("run", .right), .init("mode", .left), .init("peer", .left), .init("handshakes", .right), .init("resumed", .right),
            .init("per s", .right), .init("peer CPU s", .right), .init("peer CPU/wall", .right), .init("µs peer CPU each", .right),
            .init("per peer CPU-s", .right), .init("client CPU/wall", .right), .init("errors", .right), .init("suite", .left),
        ])
        for result in cases {
            table.add([
                "\(result.run)", result.mode.rawValue, result.peer.rawValue, "\(result.handshakes)",
                formatFixed(Double(result.resumed) * 100 / Double(max(result.handshakes, 1)), 1) + "%", formatFixed(result.perSecond, 0),
                formatFixed(result.peerCPU, 2), formatFixed(result.peerCPU / result.seconds, 2), formatFixed(result.microsecondsEach, 1),
                formatFixed(result.perPeerCPUSecond, 0), formatFixed(result.clientCPU / result.seconds, 2), "\(result.errors)", result.cipher ?? "none",
            ])
        }
        lines.append("")
        lines.append(
            "\(self.clients) driver processes, \(formatFixed(self.seconds, 0)) s per case; a handshake is TCP connect + TLS 1.3 + close; CPU of the peer process from /proc"
        )
        lines.append(table.rendered)

        // Summary: median and range over the runs.
        var summary = Table(columns: [
            .init("mode", .left), .init("peer", .left), .init("µs peer CPU each, median", .right), .init("range", .right),
            .init("per peer CPU-s, median", .right),
        ])
        var results: [(String, JSON)] = []
        for mode in self.handshakeModes {
            for peer in [Peer.relay, .haproxy] {
                let values = cases.filter { $0.mode == mode && $0.peer == peer }.map(\.microsecondsEach)
                let spread = Spread(values)
                summary.add([
                    mode.rawValue, peer.rawValue, formatFixed(spread.median, 1), "\(formatFixed(spread.low, 1))–\(formatFixed(spread.high, 1))",
                    formatFixed(1e6 / spread.median, 0),
                ])
                results.append(("\(mode.rawValue)_\(peer.rawValue)_microseconds", spread.json))
            }
        }
        lines.append("")
        lines.append("over \(self.runs) runs:")
        lines.append(summary.rendered)
        lines.append("")
        func ratio(_ name: String, _ pairs: [(Double, Double)]) -> Spread {
            let spread = Spread(pairs.map { $0.0 / $0.1 })
            results.append((name, spread.json))
            return spread
        }
        func perRun(_ mode: HandshakeMode, _ peer: Peer) -> [Int: Double] {
            Dictionary(uniqueKeysWithValues: cases.filter { $0.mode == mode && $0.peer == peer }.map { ($0.run, $0.microsecondsEach) })
        }
        let runNumbers = Array(1...self.runs)
        if self.handshakeModes.contains(.full) {
            let relayFull = perRun(.full, .relay)
            let haproxyFull = perRun(.full, .haproxy)
            let spread = ratio("full_relay_over_haproxy", runNumbers.map { (relayFull[$0]!, haproxyFull[$0]!) })
            lines.append(
                "full handshake, relay CPU / haproxy CPU per handshake: median \(formatFixed(spread.median, 2)) (range \(formatFixed(spread.low, 2))–\(formatFixed(spread.high, 2))) → \(spread.median <= 1 ? "PASS" : "FAIL") (target ≤ 1.0)"
            )
            if self.handshakeModes.contains(.resumed) {
                let relayResumed = perRun(.resumed, .relay)
                let haproxyResumed = perRun(.resumed, .haproxy)
                let own = ratio("resumed_over_full_relay", runNumbers.map { (relayResumed[$0]!, relayFull[$0]!) })
                lines.append(
                    "resumed / full handshake, relay CPU: median \(formatFixed(own.median, 2)) (range \(formatFixed(own.low, 2))–\(formatFixed(own.high, 2))) → \(own.median < 1.0 / 3 ? "PASS" : "FAIL") (target < 0.33)"
                )
                let theirs = ratio("resumed_over_full_haproxy", runNumbers.map { (haproxyResumed[$0]!, haproxyFull[$0]!) })
                lines.append(
                    "resumed / full handshake, haproxy CPU: median \(formatFixed(theirs.median, 2)) (range \(formatFixed(theirs.low, 2))–\(formatFixed(theirs.high, 2)))"
                )
                let resumed = ratio("resumed_relay_over_haproxy", runNumbers.map { (relayResumed[$0]!, haproxyResumed[$0]!) })
                lines.append(
                    "resumed handshake, relay CPU / haproxy CPU: median \(formatFixed(resumed.median, 2)) (range \(formatFixed(resumed.low, 2))–\(formatFixed(resumed.high, 2)))"
                )
            }
        }
        if cases.contains(where: { $0.mode == .resumed && $0.resumed < $0.handshakes }) {
            notes.append("some handshakes of the resumed mode were full ones (the server did not resume the offered ticket): see the resumed column")
        }
        if !notes.isEmpty {
            lines.append("")
            lines.append(contentsOf: notes.map { "note: \($0)" })
        }
        if self.json {
            let object: JSON = .object([
                ("benchmark", .string("handshake")),
                ("command", .string((["relay-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " "))),
                ("machine", machine.json),
                (
                    "settings",
                    .object([
                        ("seconds", .double(self.seconds)), ("runs", .int(self.runs)), ("clients", .int(self.clients)), ("modes", .string(self.modes)),
                        ("haproxy_threads", .int(self.haproxyThreads)),
                    ])
                ),
                ("cases", .array(cases.map(\.json))),
                ("results", .object(results)),
                ("notes", .array(notes.map { .string($0) })),
            ])
            print(object.serialized())
        } else {
            print(lines.joined(separator: "\n"))
        }
    }
}

enum HandshakeMode: String { case full, resumed }

/// One mode on one peer in one run.
struct HandshakeCase {
    var run: Int
    var mode: HandshakeMode
    var peer: Peer
    var full: Int
    var resumed: Int
    var errors: Int
    var firstError: String?
    /// The TLS 1.3 suite the peer chose (the driver's first connection).
    var cipher: String?
    var seconds: Double
    var clientCPU: Double
    var peerCPU: Double

    init(run: Int, mode: HandshakeMode, peer: Peer, driverOutput: String, peerCPU: Double) throws {
        guard let line = driverOutput.split(separator: "\n").last,
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let full = object["full"] as? Int, let resumed = object["resumed"] as? Int, let errors = object["errors"] as? Int,
            let seconds = object["seconds"] as? Double, let clientCPU = object["client_cpu_seconds"] as? Double
        else { throw BenchError("the handshake driver printed no result: \(driverOutput)") }
        self.run = run
        self.mode = mode
        self.peer = peer
        self.full = full
        self.resumed = resumed
        self.errors = errors
        self.firstError = object["first_error"] as? String
        self.cipher = object["cipher"] as? String
        self.seconds = seconds
        self.clientCPU = clientCPU
        self.peerCPU = peerCPU
    }

    var handshakes: Int { self.full + self.resumed }
    var perSecond: Double { Double(self.handshakes) / self.seconds }
    var microsecondsEach: Double { self.peerCPU * 1e6 / Double(max(self.handshakes, 1)) }
    var perPeerCPUSecond: Double { Double(self.handshakes) / self.peerCPU }

    var json: JSON {
        .object([
            ("run", .int(self.run)), ("mode", .string(self.mode.rawValue)), ("peer", .string(self.peer.rawValue)), ("full", .int(self.full)),
            ("resumed", .int(self.resumed)), ("errors", .int(self.errors)), ("seconds", .double(self.seconds)), ("peer_cpu_seconds", .double(self.peerCPU)),
            ("client_cpu_seconds", .double(self.clientCPU)), ("microseconds_peer_cpu_each", .double(self.microsecondsEach)),
            ("cipher", self.cipher.map { .string($0) } ?? .null), ("first_error", self.firstError.map { .string($0) } ?? .null),
        ])
    }
}

/// Median and range of a few runs.
struct Spread {
    var median: Double
    var low: Double
    var high: Double

    init(_ values: [Double]) {
        let sorted = values.sorted()
        self.low = sorted.first ?? .nan
        self.high = sorted.last ?? .nan
        if sorted.isEmpty {
            self.median = .nan
        } else if sorted.count % 2 == 1 {
            self.median = sorted[sorted.count / 2]
        } else {
            self.median = (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
    }

    var json: JSON { .object([("median", .double(self.median)), ("low", .double(self.low)), ("high", .double(self.high))]) }
}

/// haproxy terminating TLS 1.3 with the same certificate, and doing nothing else until the
/// client sends a byte (which the driver never does): no backend connection is made.
struct HandshakeHAProxy {
    var child: ChildProcess
    var port: Int

    static func start(tls: TLSMaterial, threads: Int, directory: String) async throws -> HandshakeHAProxy {
        guard let haproxy = which("haproxy") else { throw BenchError("haproxy is not installed (apt-get install -y haproxy)") }
        let port = try freePort()
        // Nothing listens there; haproxy would connect only after the client's first byte.
        let unusedBackend = try freePort()
        let configuration = """
            global
                nbthread \(threads)
                maxconn 9000
                ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
                ssl-default-bind-options ssl-min-ver TLSv1.3
            defaults
                mode tcp
                timeout connect 5s
                timeout client 30s
                timeout server 30s
            frontend handshake_in
                bind 127.0.0.1:\(port) ssl crt \(tls.combinedPath) alpn \(RelayProtocol.alpnToken)
                tcp-request inspect-delay 10s
                tcp-request content accept if { req.len gt 0 }
                default_backend unused
            backend unused
                server unused 127.0.0.1:\(unusedBackend)

            """
        let path = "\(directory)/haproxy-handshake.cfg"
        try configuration.write(toFile: path, atomically: true, encoding: .utf8)
        let child = try ChildProcess(name: "haproxy", executable: haproxy, arguments: ["-f", path, "-db"], logPath: "\(directory)/haproxy-handshake.log")
        try await waitForListener(port: port, timeout: 10, child: child)
        return HandshakeHAProxy(child: child, port: port)
    }
}

extension HandshakeBenchmark {
    /// An OpenSSL configuration for the driver: the TLS 1.3 suites in BoringSSL's order.
    static let opensslConfiguration = """
        openssl_conf = openssl_init

        [openssl_init]
        ssl_conf = ssl_configuration

        [ssl_configuration]
        system_default = tls_defaults

        [tls_defaults]
        Ciphersuites = TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

        """

    /// The load generator (see the top of this file), run as `python3 handshake_driver.py`.
    static let handshakeDriver = #"""
        """relay-bench handshake's load: TLS 1.3 handshakes from worker processes.

        Each worker connects over TCP, does a TLS 1.3 handshake (ALPN given, the server's
        certificate verified against the given file, X25519 key share as OpenSSL offers it),
        reads whatever already arrived and closes. Without --resume every handshake is a full
        one. With --resume each worker first gets one session ticket (a full handshake, then
        --poke bytes that make the server write: BoringSSL sends TLS 1.3 tickets with its
        first write) and offers it on every connection, as a reconnecting agent would. Workers
        start together after that. Prints one JSON object: handshakes done in --seconds, how
        many the server resumed, errors, and the workers' CPU seconds.
        """
        import argparse, json, multiprocessing, os, resource, select, socket, sys, time

        # OpenSSL reads its configuration file when ssl is first imported, so the TLS 1.3
        # suites the client offers (--openssl-conf) are set before that.
        if "--openssl-conf" in sys.argv:
            os.environ["OPENSSL_CONF"] = sys.argv[sys.argv.index("--openssl-conf") + 1]
        import ssl  # noqa: E402


        def drain_ticket(tls, offered, limit):
            """Reads until a ticket of this connection arrived (TLS 1.3 sends it after the
            handshake); returns the session to offer next time, or None."""
            tls.setblocking(False)
            deadline = time.monotonic() + limit
            while True:
                session = tls.session
                if session is not None and session.has_ticket and (offered is None or session.id != offered.id):
                    try:  # a second ticket in the same segment: read it too, so close sends FIN, not RST
                        tls.recv(4096)
                    except (ssl.SSLWantReadError, ssl.SSLError, OSError):
                        pass
                    return session
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                readable, _, _ = select.select([tls], [], [], remaining)
                if not readable:
                    return None
                try:
                    if not tls.recv(4096):
                        return None
                except ssl.SSLWantReadError:
                    continue
                except (ssl.SSLError, OSError):
                    return None


        def connect(arguments, context, session):
            raw = socket.create_connection((arguments.host, arguments.port), timeout=5)
            try:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                tls = context.wrap_socket(raw, server_hostname=arguments.name, session=session)
            except BaseException:
                raw.close()
                raise
            if tls.version() != "TLSv1.3" or tls.selected_alpn_protocol() != arguments.alpn:
                tls.close()
                raise RuntimeError("negotiated %s, ALPN %s" % (tls.version(), tls.selected_alpn_protocol()))
            return tls


        def first_ticket(arguments, context):
            """A session ticket to offer: one full handshake, then (if given) the poke bytes, which
            make the server write; BoringSSL sends TLS 1.3 tickets with its first write."""
            tls = connect(arguments, context, None)
            try:
                if arguments.poke:
                    tls.sendall(bytes.fromhex(arguments.poke))
                session = drain_ticket(tls, None, 5.0)
            finally:
                tls.close()
            if session is None:
                raise RuntimeError("the server sent no TLS 1.3 session ticket within 5 s")
            return session


        def worker(arguments, start, results):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.minimum_version = ssl.TLSVersion.TLSv1_3
            context.load_verify_locations(arguments.ca)
            context.check_hostname = True
            context.set_alpn_protocols([arguments.alpn])
            full = resumed = errors = 0
            first_error = None
            cipher = None
            session = None
            if arguments.resume:
                try:
                    session = first_ticket(arguments, context)
                except Exception as error:
                    results.put({"full": 0, "resumed": 0, "errors": 1, "first_error": "no ticket: %s: %s" % (type(error).__name__, error)})
                    return
            while time.monotonic() < start:
                time.sleep(0.001)
            end = start + arguments.seconds
            while time.monotonic() < end:
                try:
                    tls = connect(arguments, context, session)
                    if cipher is None:
                        cipher = tls.cipher()[0]
                    if tls.session_reused:
                        resumed += 1
                    else:
                        full += 1
                    # Whatever already arrived (haproxy's tickets) is read, so close sends FIN.
                    tls.setblocking(False)
                    try:
                        tls.recv(4096)
                    except (ssl.SSLError, OSError):
                        pass
                    tls.close()
                except Exception as error:  # counted and shown; the loop goes on
                    errors += 1
                    if first_error is None:
                        first_error = "%s: %s" % (type(error).__name__, error)
                    time.sleep(0.01)
            results.put({"full": full, "resumed": resumed, "errors": errors, "first_error": first_error, "cipher": cipher})


        def main():
            parser = argparse.ArgumentParser()
            parser.add_argument("--host", default="127.0.0.1")
            parser.add_argument("--port", type=int, required=True)
            parser.add_argument("--name", default="localhost")
            parser.add_argument("--ca", required=True)
            parser.add_argument("--alpn", default="supportrelay/1")
            parser.add_argument("--seconds", type=float, default=10)
            parser.add_argument("--clients", type=int, default=2)
            parser.add_argument("--resume", action="store_true")
            parser.add_argument("--poke", default="", help="hex bytes that make the server write (to get the first ticket)")
            parser.add_argument("--openssl-conf", default=None, help="an OpenSSL configuration file (read before ssl is imported)")
            arguments = parser.parse_args()
            results = multiprocessing.Queue()
            # Workers start together, after all are forked, so the window holds only handshakes.
            start = time.monotonic() + 1.0
            workers = [multiprocessing.Process(target=worker, args=(arguments, start, results)) for _ in range(arguments.clients)]
            for process in workers:
                process.start()
            collected = [results.get() for _ in workers]
            for process in workers:
                process.join()
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            total = {key: sum(r[key] for r in collected) for key in ("full", "resumed", "errors")}
            total["first_error"] = next((r["first_error"] for r in collected if r["first_error"]), None)
            total["cipher"] = next((r.get("cipher") for r in collected if r.get("cipher")), None)
            total["seconds"] = arguments.seconds
            total["client_cpu_seconds"] = usage.ru_utime + usage.ru_stime
            print(json.dumps(total))


        if __name__ == "__main__":
            main()
        """#
}
