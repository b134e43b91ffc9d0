import Foundation
import NIOCore

/// When to give the allocator's free memory back to the operating system.
///
/// glibc's malloc keeps the memory of freed objects for reuse and returns to the kernel
/// only what lies at the top of its heaps. After a burst of connections closes, most of
/// their memory is free but scattered, and stays in the relay's RSS: 100,000 connections
/// in bursts of 200 left the relay 36 MiB above its baseline, of which 34 MiB were free
/// blocks that `malloc_trim(0)` gave back (benchmarks/RESULTS.md "Soak"). The relay held
/// no more than before; an operator watching RSS saw a leak.
///
/// The policy trims when the number of live connections has fallen well below the highest
/// it reached since the last trim, at most once per `interval`, and once more an interval
/// later: memory a closed connection held is not all freed the moment its handler goes
/// (buffers and TLS state follow when the channel is released), and a soak's relay trimmed
/// only at the drop stayed 38 MiB above its baseline. A relay whose load stays level reuses
/// its free memory and is never trimmed; one whose load fell gives it back within about
/// `interval`. `relay-server` asks it every second, with the highest count since the last
/// second (``Relay/takeConnectionPeak()``, ``RelayNode``).
struct HeapTrimPolicy: Sendable {
    /// At most one trim per interval; nil: never trim (`heap_trim_seconds: 0`).
    var interval: TimeAmount?
    /// How far below the peak since the last trim the live count must fall. Small drops
    /// free little; the allocator reuses that memory for the next connections.
    var minimumDrop = 64

    private var peakSinceTrim = 0
    private var lastTrim: NIODeadline?
    /// The next trim is due one interval after the last, whatever the count does: the
    /// follow-up of a trim after a drop.
    private var followUpPending = false
    /// Why ``observe(live:peak:now:)`` last said yes: a drop (which earns a follow-up).
    private var dueToDrop = false

    init(interval: TimeAmount?, minimumDrop: Int = 64) {
        self.interval = interval
        self.minimumDrop = minimumDrop
    }

    /// Records the live connection count at `now`, and the highest it reached since the
    /// previous call (a burst can open and close between two samples); true when the relay
    /// should trim now (the caller then trims and calls ``trimmed(live:now:)``).
    mutating func observe(live: Int, peak: Int? = nil, now: NIODeadline) -> Bool {
        guard let interval = self.interval else { return false }
        self.peakSinceTrim = max(self.peakSinceTrim, live, peak ?? live)
        let dropped = self.peakSinceTrim - live >= self.minimumDrop
        guard dropped || self.followUpPending else { return false }
        if let last = self.lastTrim, now - last < interval { return false }
        self.dueToDrop = dropped
        return true
    }

    /// A trim happened at `now` with `live` connections open: the peak starts again from
    /// there, and a trim after a drop is followed by one more an interval later.
    mutating func trimmed(live: Int, now: NIODeadline) {
        self.peakSinceTrim = live
        self.lastTrim = now
        self.followUpPending = self.dueToDrop
        self.dueToDrop = false
    }
}

/// glibc's `malloc_trim(0)`, looked up at run time: Swift's Glibc module does not declare
/// it, and a C library without it (musl) simply has no trim.
enum HeapTrim {
    private typealias Function = @convention(c) (Int) -> Int32

    private static let function: Function? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: Function.self)
    }()

    /// Whether this process's C library can trim its heap.
    static var isAvailable: Bool { self.function != nil }

    /// Returns free heap memory to the kernel; true when some was released.
    @discardableResult
    static func trim() -> Bool {
        guard let function = self.function else { return false }
        return function(0) != 0
    }

    private typealias Option = @convention(c) (Int32, Int32) -> Int32
    private static let mallopt: Option? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return nil }
        return unsafeBitCast(symbol, to: Option.self)
    }()

    /// Leaves giving memory back to the relay's trims (``HeapTrimPolicy``) instead of
    /// glibc's own, which gives it back on a `free` and takes it again on the next
    /// `malloc`. Forwarding one session flat out, the TLS layer's plaintext buffers (a few
    /// hundred KiB, allocated and freed on every read) went back and forth like that, and
    /// page faults took 9–16% of the relay's CPU (benchmarks/RESULTS.md "Where a forwarded
    /// byte's CPU goes"). Buffers up to 32 MiB now come from the heap, which keeps what is
    /// freed until a trim. Nothing changes when the C library is not glibc, or when the
    /// operator tuned malloc through `GLIBC_TUNABLES`. Returns whether it changed anything.
    @discardableResult
    static func keepFreedMemoryUntilTrimmed(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let mallopt = self.mallopt, self.isAvailable, environment["GLIBC_TUNABLES"]?.contains("malloc") != true else { return false }
        // glibc's malloc.h: M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3 (at most 32 MiB on 64-bit).
        let trim = mallopt(-1, 1 << 30)
        let mmap = mallopt(-3, 32 << 20)
        return trim == 1 && mmap == 1
    }
}
