import Foundation
import RelayTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Issue 12 item 5, the outside check repeated against a real relay: before end-to-end
/// encryption the relay's memory held the clipboard text of both sides. Now it must
/// never hold what a session carries (docs/SECURITY.md §3.1: the relay "only ever holds
/// Sealed records"). A real `relay-server` process, set up with its own CLI as
/// docs/OPERATIONS.md §4 says, carries an attended session of two real `relay-agent`
/// processes; its whole memory is then read through /proc/PID/mem, once while the
/// session runs and once after it ended, and searched for what the agents exchanged.
@Suite(.timeLimit(.minutes(2))) struct RelayMemoryTests {
    /// Byte strings to look for, each with what it is.
    struct Pattern {
        let label: String
        let bytes: [UInt8]

        static func utf8(_ label: String, _ text: String) -> Pattern { Pattern(label: "\(label) (UTF-8)", bytes: Array(text.utf8)) }

        static func utf16(_ label: String, _ text: String) -> Pattern {
            Pattern(label: "\(label) (UTF-16LE)", bytes: text.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
        }

        /// `text` as `relay-agent view --type` sends it: a Key press and a Key release per
        /// character, whole frames back to back in one write (PROTOCOL.md §2, §5.2.5);
        /// letters and digits are their own keysyms. This is how typed text would sit in
        /// the relay's read buffers if it crossed in clear: never as one string.
        static func keyFrames(_ label: String, _ text: String) -> Pattern {
            var bytes: [UInt8] = []
            for scalar in text.unicodeScalars {
                for down: UInt8 in [1, 0] {
                    bytes += [0x44, 0, 0, 5, 0, 0, 0, UInt8(scalar.value), down]
                }
            }
            return Pattern(label: "\(label) (as Key frames in clear)", bytes: bytes)
        }
    }

    /// What a search through a process's readable memory found.
    struct MemorySearch {
        /// Where a pattern was found: its address and the mapping (a line of /proc/PID/maps).
        struct Hit: CustomStringConvertible {
            let address: UInt64
            let mapping: String
            var description: String { "0x\(String(self.address, radix: 16)) in \(self.mapping)" }
        }

        /// Hits by pattern label; at most a few each are kept.
        var hits: [String: [Hit]] = [:]
        var counts: [String: Int] = [:]
        var bytesRead = 0
        var mappingsRead = 0
        /// Readable mappings that could not be read (the kernel's [vvar] pages, a mapping
        /// that went away meanwhile), with the reason.
        var skipped: [String] = []
        /// Whether the main thread's stack was read: it comes last but for the kernel's own
        /// pages, so a search that read it did not stop early.
        var readStack = false

        var summary: String {
            "read \(self.bytesRead) bytes of \(self.mappingsRead) mappings; skipped \(self.skipped.count): \(self.skipped.joined(separator: "; "))"
        }

        func found(_ pattern: Pattern) -> Int { self.counts[pattern.label] ?? 0 }

        func whereFound(_ pattern: Pattern) -> String { (self.hits[pattern.label] ?? []).map(\.description).joined(separator: ", ") }

        /// Reads every readable mapping of process `pid` from /proc/PID/mem and searches it
        /// for `patterns`. Throws when the kernel does not let this process read that memory,
        /// so that a search that saw nothing never passes for one that found nothing.
        static func run(pid: Int32, patterns: [Pattern]) throws -> MemorySearch {
            let mapsPath = "/proc/\(pid)/maps"
            // Read to the end: a /proc file has no size, and String(contentsOfFile:) stops
            // after its first 4 KiB, about 40 of the relay's mappings.
            guard let handle = FileHandle(forReadingAtPath: mapsPath), let mapsData = try? handle.readToEnd(), !mapsData.isEmpty else {
                throw TestFailure("cannot read \(mapsPath): this test reads the relay's memory through /proc and needs Linux")
            }
            try? handle.close()
            let maps = String(decoding: mapsData, as: UTF8.self)
            let memPath = "/proc/\(pid)/mem"
            let file = open(memPath, O_RDONLY)
            guard file >= 0 else { throw TestFailure(Self.notPermitted(memPath, errno: errno)) }
            defer { close(file) }

            // glibc's memmem, a GNU extension the Glibc module does not import: a search
            // in Swift, in a debug build, takes seconds for the relay's 200 MB.
            typealias MemMem = @convention(c) (UnsafeRawPointer?, Int, UnsafeRawPointer?, Int) -> UnsafeMutableRawPointer?
            guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "memmem") else { throw TestFailure("the C library has no memmem") }
            let memmem = unsafeBitCast(symbol, to: MemMem.self)

            let longest = patterns.map(\.bytes.count).max() ?? 1
            let overlap = longest - 1
            let chunkSize = 8 << 20
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize + overlap, alignment: 16)
            defer { buffer.deallocate() }
            let base = buffer.baseAddress!

            var search = MemorySearch()
            for line in maps.split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count >= 5, fields[1].hasPrefix("r") else { continue }
                let bounds = fields[0].split(separator: "-")
                guard bounds.count == 2, let start = UInt64(bounds[0], radix: 16), let end = UInt64(bounds[1], radix: 16), start < end else {
                    throw TestFailure("cannot parse this line of \(mapsPath): \(line)")
                }
                let mapping = fields.joined(separator: " ")
                // /proc/PID/mem takes the address as a file offset; [vsyscall] lies above it.
                guard end <= UInt64(Int64.max) else {
                    search.skipped.append("\(mapping): above the largest file offset")
                    continue
                }
                var position = start
                var carried = 0
                var readAny = false
                while position < end {
                    let wanted = Int(min(UInt64(chunkSize), end - position))
                    let got = pread(file, base + carried, wanted, off_t(position))
                    if got < 0 {
                        let error = errno
                        if error == EPERM || error == EACCES { throw TestFailure(Self.notPermitted(memPath, errno: error)) }
                        search.skipped.append("\(mapping): \(String(cString: strerror(error)))")
                        break
                    }
                    if got == 0 {
                        search.skipped.append("\(mapping): ended at 0x\(String(position, radix: 16))")
                        break
                    }
                    readAny = true
                    search.bytesRead += got
                    let filled = carried + got
                    let firstAddress = position - UInt64(carried)
                    for pattern in patterns {
                        pattern.bytes.withUnsafeBytes { needle in
                            var from = 0
                            while filled - from >= needle.count,
                                let match = memmem(base + from, filled - from, needle.baseAddress!, needle.count)
                            {
                                let index = base.distance(to: match)
                                // A match that ends inside the carried bytes was counted with the previous chunk.
                                if index + needle.count > carried {
                                    search.counts[pattern.label, default: 0] += 1
                                    if search.hits[pattern.label, default: []].count < 3 {
                                        search.hits[pattern.label, default: []].append(Hit(address: firstAddress + UInt64(index), mapping: mapping))
                                    }
                                }
                                from = index + 1
                            }
                        }
                    }
                    // Keep the last bytes, so that a pattern across two chunks is found too.
                    carried = min(overlap, filled)
                    memmove(base, base + (filled - carried), carried)
                    position += UInt64(got)
                }
                if readAny {
                    search.mappingsRead += 1
                    if mapping.hasSuffix("[stack]") { search.readStack = true }
                }
            }
            return search
        }

        static func notPermitted(_ path: String, errno error: Int32) -> String {
            var text = "cannot read \(path) (\(String(cString: strerror(error)))): the kernel does not let this test read the relay's memory, "
            text += "so it cannot check what the relay holds. Run the tests as root (CI does), or as the relay's user with ptrace permission"
            if let scope = try? String(contentsOfFile: "/proc/sys/kernel/yama/ptrace_scope", encoding: .utf8) {
                text +=
                    "; Yama ptrace_scope is \(scope.trimmingCharacters(in: .whitespacesAndNewlines)) (3 forbids it even to root; 1 allows a parent to read its children)"
            }
            return text + "."
        }
    }

    /// Runs a `relay-server` admin command (OPERATIONS.md §4) with `--json` and returns its object.
    static func admin(_ arguments: [String], data directory: String) throws -> [String: Any] {
        let process = Process()
        process.executableURL = try CrashRecoveryTests.relayServerExecutable()
        process.arguments = arguments + ["--json", "--data", directory]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        let complaint = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, let object = try? JSONSerialization.jsonObject(with: printed) as? [String: Any] else {
            throw TestFailure("relay-server \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): \(complaint)")
        }
        return object
    }

    @Test func theRelayNeverHoldsClipboardTextTypedTextOrTheSignedNameInMemory() async throws {
        // Unique per run, so that a hit can only come from this session.
        func unique() -> String { UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "") }
        let viewerClipboard = "engineer clipboard 비밀번호 \(unique())"
        let hostClipboard = "customer clipboard 계좌번호 \(unique())"
        let typed = "typed\(unique().prefix(20))"
        let signedName = "engineer signed name \(unique())"
        // What the relay sees in clear and keeps (PROTOCOL.md §5.1.3, §5.1.7): the
        // engineer's login from its records, sent to the host in Paired, and the machine
        // name the host sends in HostAuth, sent to the viewer in Paired.
        let login = "memory-test-\(unique())"
        let machineName = "customer-pc-\(unique())"

        let secrets: [Pattern] = [
            .utf8("the engineer's clipboard", viewerClipboard), .utf16("the engineer's clipboard", viewerClipboard),
            .utf8("the customer's clipboard", hostClipboard), .utf16("the customer's clipboard", hostClipboard),
            .utf8("the typed text", typed), .utf16("the typed text", typed), .keyFrames("the typed text", typed),
            .utf8("the name the engineer's key signed", signedName), .utf16("the name the engineer's key signed", signedName),
        ]
        let controls: [Pattern] = [.utf8("the engineer's login", login), .utf8("the attended host's machine name", machineName)]

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("relay-memory-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let company = try Self.admin(["company", "add", "Memory Test \(unique())"], data: directory)
        guard let companyID = company["id"] as? String else { throw TestFailure("company add printed no id: \(company)") }
        // The engineer's key, made as the engineer would, added as the admin would.
        let viewerConfig = AgentEndToEndEncryptionTests.Folder()
        let (keygen, keygenOutput) = try AgentEndToEndEncryptionTests.agent(["keygen"], config: viewerConfig, environment: [:])
        try await AgentEndToEndEncryptionTests.waitForExit(keygen, keygenOutput)
        guard let publicKey = keygenOutput().split(separator: "\n").first(where: { $0.hasPrefix("public key:") })?.split(separator: " ").last else {
            throw TestFailure("keygen printed no public key: \(keygenOutput())")
        }
        let engineer = try Self.admin(["engineer", "add", "--company", companyID, login, "--public-key", String(publicKey)], data: directory)
        guard engineer["login_method"] as? String == "key" else { throw TestFailure("engineer add did not take the key: \(engineer)") }
        let configFile = directory + "/relay.json"
        try Data(#"{"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "node_name": "memory-test"}"#.utf8).write(to: URL(fileURLWithPath: configFile))

        let server = try CrashRecoveryTests.ServerProcess(
            executable: try CrashRecoveryTests.relayServerExecutable(), dataDirectory: directory, configFile: configFile)
        defer { if server.process.isRunning { server.kill(SIGKILL) } }
        let trust = ["--relay", "localhost:\(server.port)", "--fingerprint", server.fingerprint]

        let hostConfig = AgentEndToEndEncryptionTests.Folder()
        let (viewer, viewerOutput) = try AgentEndToEndEncryptionTests.agent(
            ["view"] + trust + ["--new-code", "--clipboard", viewerClipboard, "--type", typed, "--name", signedName, "--duration", "4"],
            config: viewerConfig, environment: [:])
        defer { if viewer.isRunning { viewer.terminate() } }
        guard await eventually(within: .seconds(20), { viewerOutput().contains("Support code: ") }),
            let codeLine = viewerOutput().split(separator: "\n").first(where: { $0.hasPrefix("Support code: ") })
        else {
            throw TestFailure("the viewer printed no support code: \(viewerOutput())")
        }
        let code = String(codeLine.dropFirst("Support code: ".count).prefix(6))
        let (host, hostOutput) = try AgentEndToEndEncryptionTests.agent(
            ["host"] + trust + [
                "--code", code, "--accept", "full", "--clipboard", hostClipboard, "--source", "synthetic:scrolling-text", "--fps", "10", "--name", machineName,
            ],
            config: hostConfig, environment: [:])
        defer { if host.isRunning { host.terminate() } }

        // Both clipboards crossed the relay, and the typed keys went to it.
        let crossed = await eventually(within: .seconds(20)) {
            viewerOutput().contains("clipboard from the host: \(hostClipboard)") && hostOutput().contains("clipboard from the engineer: \(viewerClipboard)")
                && viewerOutput().contains("Sent \(typed.count) typed characters")
        }
        guard crossed else { throw TestFailure("the clipboards did not cross:\nviewer: \(viewerOutput())\nhost: \(hostOutput())") }
        #expect(hostOutput().contains("signed the name \"\(signedName)\""), "\(hostOutput())")
        #expect(hostOutput().contains("Engineer \(login) of "), "\(hostOutput())")
        #expect(viewerOutput().contains("Connected to \(machineName) (customer PC at "), "\(viewerOutput())")

        // While the session runs: what the relay is forwarding now.
        let during = try MemorySearch.run(pid: server.process.processIdentifier, patterns: secrets + controls)
        #expect(
            viewer.isRunning && host.isRunning,
            "the session ended before the relay's memory was read during it:\nviewer: \(viewerOutput())\nhost: \(hostOutput())")
        // After it ended, the relay still running: what it kept or did not clear.
        try await AgentEndToEndEncryptionTests.waitForExit(viewer, viewerOutput)
        try await AgentEndToEndEncryptionTests.waitForExit(host, hostOutput)
        #expect(viewer.terminationStatus == 0, "\(viewerOutput())")
        #expect(viewerOutput().contains("Session ended after 4 s."), "\(viewerOutput())")
        #expect(server.process.isRunning, "the relay stopped before its memory could be read after the session")
        let after = try MemorySearch.run(pid: server.process.processIdentifier, patterns: secrets + controls)

        for (moment, search) in [("during the session", during), ("after the session", after)] {
            #expect(search.readStack, "\(moment): the search did not reach the relay's [stack], so it did not read all of its memory (\(search.summary))")
            for control in controls {
                #expect(
                    search.found(control) > 0,
                    "\(moment): \(control.label), which the relay holds in clear, was not found in its memory, so the search does not work (\(search.summary))")
            }
            for secret in secrets {
                #expect(
                    search.found(secret) == 0,
                    "\(moment): the relay's memory holds \(secret.label) \(search.found(secret)) times, at \(search.whereFound(secret)); it must only ever hold Sealed records (SECURITY.md §3.1)"
                )
            }
        }
    }
}
