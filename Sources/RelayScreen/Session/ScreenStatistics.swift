import Foundation

/// The viewer's live figures (`relay-agent view --stats`): updates per second, bit rate,
/// bytes per update and update latency (UpdateRequest sent → its TileUpdate decoded),
/// over a sliding window, plus totals for the session summary. Pure: times come in.
public struct ScreenStatistics: Sendable {
    public struct Sample: Sendable, Hashable {
        public var at: Duration
        public var bytes: Int
        public var latency: Duration
    }

    public struct Figures: Sendable, Hashable, CustomStringConvertible {
        public var updatesPerSecond: Double
        public var kilobitsPerSecond: Double
        public var bytesPerUpdate: Double
        /// Median and worst latency in the window, in milliseconds.
        public var latencyMedianMilliseconds: Double
        public var latencyMaximumMilliseconds: Double

        public var description: String {
            String(
                format: "%5.1f fps  %8.1f kbit/s  %8.0f B/update  latency %5.1f ms (max %5.1f ms)",
                self.updatesPerSecond, self.kilobitsPerSecond, self.bytesPerUpdate,
                self.latencyMedianMilliseconds, self.latencyMaximumMilliseconds
            )
        }
    }

    public let window: Duration
    private var samples: [Sample] = []
    public private(set) var totalUpdates = 0
    public private(set) var totalBytes = 0

    public init(window: Duration = .seconds(2)) {
        self.window = window
    }

    /// One update of `bytes` wire bytes (frame headers included) decoded at `at` (time
    /// since the session started), `latency` after its request was sent.
    public mutating func record(bytes: Int, latency: Duration, at: Duration) {
        self.samples.append(Sample(at: at, bytes: bytes, latency: latency))
        self.totalUpdates += 1
        self.totalBytes += bytes
        self.forget(before: at - self.window)
    }

    /// The figures over the window that ends at `now`.
    public mutating func figures(at now: Duration) -> Figures {
        self.forget(before: now - self.window)
        let seconds = Self.seconds(self.window)
        let bytes = self.samples.reduce(0) { $0 + $1.bytes }
        let latencies = self.samples.map { Self.seconds($0.latency) * 1000 }.sorted()
        return Figures(
            updatesPerSecond: Double(self.samples.count) / seconds,
            kilobitsPerSecond: Double(bytes) * 8 / 1000 / seconds,
            bytesPerUpdate: self.samples.isEmpty ? 0 : Double(bytes) / Double(self.samples.count),
            latencyMedianMilliseconds: latencies.isEmpty ? 0 : latencies[latencies.count / 2],
            latencyMaximumMilliseconds: latencies.last ?? 0
        )
    }

    private mutating func forget(before cutoff: Duration) {
        if let keep = self.samples.firstIndex(where: { $0.at > cutoff }) {
            self.samples.removeFirst(keep)
        } else {
            self.samples.removeAll()
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
