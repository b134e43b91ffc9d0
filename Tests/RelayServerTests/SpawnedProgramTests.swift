import Testing

@testable import RelayTestSupport

/// The test support's own runner of commands (BuiltExecutable.run), which every
/// command-line test goes through.
@Suite struct SpawnedProgramTests {
    @Test func bothStreamsAreReadInFullWhileTheProgramWritesMoreThanAPipeHolds() throws {
        // 200 KB to each stream, standard error first: a runner that read one stream to its
        // end before the other would wait forever on a full pipe.
        let ran = try SpawnedProgram.run(
            path: "/bin/sh", arguments: ["-c", "head -c 200000 /dev/zero >&2; head -c 200000 /dev/zero; echo \"$GREETING\"; exit 3"],
            environment: ["GREETING": "hello", "PATH": "/usr/bin:/bin"])
        #expect(ran.status == 3)
        #expect(ran.errors.count == 200_000)
        #expect(ran.output.count == 200_006)
        #expect(String(decoding: ran.output.suffix(6), as: UTF8.self) == "hello\n")
    }

    @Test func aProgramEndedByASignalReports128PlusTheSignal() throws {
        let ran = try SpawnedProgram.run(path: "/bin/sh", arguments: ["-c", "kill -TERM $$"], environment: [:])
        #expect(ran.status == 128 + 15)
    }

    @Test func theChildGetsNoInputAndNoOtherDescriptors() throws {
        // Standard input is /dev/null; descriptors above 2 are closed (the listing's own
        // directory descriptor aside).
        let ran = try SpawnedProgram.run(
            path: "/bin/sh", arguments: ["-c", "cat; ls /proc/self/fd | wc -l"], environment: ["PATH": "/usr/bin:/bin"])
        #expect(ran.status == 0)
        #expect(String(decoding: ran.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "4")
    }

    @Test func aProgramThatCannotStartSaysWhich() {
        #expect(throws: SpawnedProgram.Failure.self) {
            try SpawnedProgram.run(path: "/nonexistent/program", arguments: [], environment: [:])
        }
    }
}
