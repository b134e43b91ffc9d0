// relay-bench: SupportRelay's benchmark driver. Each benchmark area is a subcommand;
// add a new one by writing a ParsableCommand (with `@OptionGroup var common: CommonOptions`
// and a `Report`) and listing it in `subcommands` below.

import ArgumentParser

@main
struct RelayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay-bench",
        abstract: "Benchmarks for SupportRelay. Build with -c release.",
        discussion: """
            Every subcommand prints aligned tables (with machine, date and load average) or, \
            with --json, one JSON object holding all figures and the machine information. \
            Results are recorded in benchmarks/RESULTS.md.
            """,
        subcommands: [
            WireBenchmark.self, RelayBenchmark.self, CodecBenchmark.self, StoreBenchmark.self, ClusterBenchmark.self, SoakBenchmark.self, SealBenchmark.self,
            LatencyProbeCommand.self, HandshakeBenchmark.self,
        ]
    )
}
