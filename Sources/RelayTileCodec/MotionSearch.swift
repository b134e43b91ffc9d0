#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Copy detection for the encoder (PROTOCOL.md §7.5): which changed tiles are content
// that moved — a scrolled page, a dragged window — and can be sent as a copy from the
// viewer's framebuffer instead of as pixels.
//
// Candidates are cheap guesses, and every tile a copy covers is verified by exact row
// comparison before it is used, so a wrong guess costs time, never correctness.

/// A BGRX image seen through a pointer, valid only inside a `withUnsafeBytes`.
struct PixelView {
    let base: UnsafeRawPointer
    let width: Int
    let height: Int

    @inline(__always) var stride: Int { self.width &* 4 }

    @inline(__always)
    func row(_ y: Int, x: Int = 0) -> UnsafeRawPointer { self.base + (y &* self.stride &+ x &* 4) }

    /// The pixel at (`x`, `y`) as `0x00RRGGBB` (its unused byte dropped).
    @inline(__always)
    func rgb(_ x: Int, _ y: Int) -> UInt32 {
        UInt32(littleEndian: self.row(y, x: x).loadUnaligned(as: UInt32.self)) & 0x00FF_FFFF
    }
}

/// How content moved: a pixel at (x, y) in the previous frame is at (x + dx, y + dy) now.
struct MotionVector: Hashable {
    var dx: Int
    var dy: Int
}

/// A tile of the encoder's grid, in pixels (edge tiles are smaller than 64×64).
struct TileRect {
    var x: Int
    var y: Int
    var width: Int
    var height: Int
}

struct MotionSearch {
    // Reused between updates: the previous frame's row hashes of one tile column, and
    // the votes for each candidate offset.
    private var oldRows: [UInt64: Int32] = [:]
    private var votes: [MotionVector: Int] = [:]

    /// How far (in pixels, each axis) the 2-D search looks for a moved window.
    static let windowSearchRadius = 256
    /// Pixels in a 2-D search probe: 16 pixels = 64 bytes, rarely repeated by chance.
    static let probeWidth = 16

    /// True when the tile's pixels in `new` equal the rectangle `vector` back in `old`.
    static func tileMatches(_ tile: TileRect, old: PixelView, new: PixelView, vector: MotionVector) -> Bool {
        let sourceX = tile.x - vector.dx
        let sourceY = tile.y - vector.dy
        guard sourceX >= 0, sourceY >= 0, sourceX + tile.width <= old.width, sourceY + tile.height <= old.height else {
            return false
        }
        let length = tile.width &* 4
        // The middle row first: a wrong vector often matches the top rows (background
        // above a line of text) and fails only further down.
        let middle = tile.height / 2
        if memcmp(new.row(tile.y &+ middle, x: tile.x), old.row(sourceY &+ middle, x: sourceX), length) != 0 {
            return false
        }
        for row in 0..<tile.height where row != middle {
            if memcmp(new.row(tile.y &+ row, x: tile.x), old.row(sourceY &+ row, x: sourceX), length) != 0 {
                return false
            }
        }
        return true
    }

    /// Vertical scroll offsets: row hashes of a few changed tile columns in the new frame
    /// matched against the same columns of the previous frame. Rows of one colour match
    /// everywhere and rows that occur twice match ambiguously; both are left out.
    mutating func verticalCandidates(
        old: PixelView,
        new: PixelView,
        dirtyColumns: [Int],
        dirtyRowsInColumn: (Int) -> [Int]
    ) -> [MotionVector] {
        self.votes.removeAll(keepingCapacity: true)
        let tile = TileUpdateFormat.tileSize
        for column in dirtyColumns {
            let x = column * tile
            let length = min(tile, new.width - x) &* 4
            guard length >= 8 else { continue }
            self.oldRows.removeAll(keepingCapacity: true)
            // Scrolled content comes from inside the area that changed: a scroll redraws
            // everything it moves, so only the changed tiles' rows of the previous frame
            // are hashed, not the column's whole height.
            let tileRows = dirtyRowsInColumn(column)
            for tileRow in tileRows {
                for y in (tileRow * tile)..<min(tileRow * tile + tile, old.height) {
                    let row = old.row(y, x: x)
                    if Self.isUniform(row, length: length) { continue }
                    let hash = Self.hash(row, length: length)
                    if let seen = self.oldRows[hash] {
                        if seen >= 0 { self.oldRows[hash] = -1 }
                    } else {
                        self.oldRows[hash] = Int32(y)
                    }
                }
            }
            for tileRow in tileRows {
                let top = tileRow * tile
                for y in top..<min(top + tile, new.height) {
                    let row = new.row(y, x: x)
                    if Self.isUniform(row, length: length) { continue }
                    guard let oldY = self.oldRows[Self.hash(row, length: length)], oldY >= 0, Int(oldY) != y else {
                        continue
                    }
                    self.votes[MotionVector(dx: 0, dy: y - Int(oldY)), default: 0] += 1
                }
            }
        }
        return self.topCandidates(minimumVotes: 3)
    }

    /// Moves in any direction (a dragged window): short probes from changed tiles of the
    /// new frame searched for in the previous frame within ``windowSearchRadius``, at the
    /// places that changed (`dirty`, row-major over `grid`): where a window was, something
    /// else is now, so the content a copy can come from is always in a changed tile.
    ///
    /// Each probe scans the rows nearest its own first (a dragged window moves a little
    /// between updates), and a hit whose vector the probe's whole tile confirms ends the
    /// probe; later probes that a confirmed vector already explains are not scanned.
    /// Otherwise a probe's hits are votes, unless it has more than four (a pattern that
    /// repeats, which says nothing).
    mutating func windowCandidates(old: PixelView, new: PixelView, probeTiles: [TileRect], dirty: [Bool], grid: TileGrid) -> [MotionVector] {
        self.votes.removeAll(keepingCapacity: true)
        var confirmedVectors: [MotionVector] = []
        for tile in probeTiles {
            guard let (probeX, probeY) = Self.probe(in: tile, new: new) else { continue }
            if let known = confirmedVectors.first(where: { Self.probeMatches(x: probeX, y: probeY, old: old, new: new, vector: $0) }) {
                let confirmed = Self.tileMatches(tile, old: old, new: new, vector: known)
                self.votes[known, default: 0] += confirmed ? Self.confirmedVote : 1
                continue
            }
            let search = dirty.withUnsafeBufferPointer { dirty in
                Self.search(probeX: probeX, probeY: probeY, tile: tile, old: old, new: new, dirty: dirty, columns: grid.columns)
            }
            switch search {
            case .confirmed(let vector):
                confirmedVectors.append(vector)
                // Worth more than all the unconfirmed votes of the other probes together.
                self.votes[vector, default: 0] += Self.confirmedVote
            case .hits(let vectors):
                for vector in vectors { self.votes[vector, default: 0] += 1 }
            case .ambiguous:
                break
            }
        }
        // One probe is enough to try a vector: tiles verify it exactly.
        return self.topCandidates(minimumVotes: 1)
    }

    /// The vote of a vector that the probe's whole tile confirmed.
    static let confirmedVote = 16

    private enum ProbeResult {
        case confirmed(MotionVector)
        case hits([MotionVector])
        case ambiguous
    }

    /// Where the probe at (`probeX`, `probeY`) of `new` starts in a changed tile of `old`
    /// within the search radius, rows nearest the probe's first.
    private static func search(
        probeX: Int, probeY: Int, tile: TileRect, old: PixelView, new: PixelView, dirty: UnsafeBufferPointer<Bool>, columns: Int
    ) -> ProbeResult {
        let tileSize = TileUpdateFormat.tileSize
        let probeBytes = Self.probeWidth * 4
        let radius = Self.windowSearchRadius
        let probe = new.row(probeY, x: probeX)
        let head = probe.loadUnaligned(as: UInt64.self)
        let lowX = max(0, probeX - radius)
        let highX = min(old.width - Self.probeWidth, probeX + radius)
        guard lowX <= highX else { return .hits([]) }
        var found: [MotionVector] = []
        for distance in 0...radius {
            for side in 0..<(distance == 0 ? 1 : 2) {
                let y = side == 0 ? probeY - distance : probeY + distance
                guard y >= 0, y < old.height else { continue }
                let row = old.row(y)
                let rowBase = (y / tileSize) * columns
                for column in (lowX / tileSize)...(highX / tileSize) where dirty[rowBase + column] {
                    var x = max(lowX, column * tileSize)
                    let last = min(highX, column * tileSize + tileSize - 1)
                    while x <= last {
                        if row.loadUnaligned(fromByteOffset: x &* 4, as: UInt64.self) == head,
                            memcmp(row + x &* 4, probe, probeBytes) == 0,
                            x != probeX || y != probeY
                        {
                            let vector = MotionVector(dx: probeX - x, dy: probeY - y)
                            if Self.tileMatches(tile, old: old, new: new, vector: vector) { return .confirmed(vector) }
                            found.append(vector)
                            if found.count > 4 { return .ambiguous }
                        }
                        x &+= 1
                    }
                }
            }
        }
        return .hits(found)
    }

    /// True when the probe at (`x`, `y`) of `new` is in `old` at the place `vector` says.
    private static func probeMatches(x: Int, y: Int, old: PixelView, new: PixelView, vector: MotionVector) -> Bool {
        let sourceX = x - vector.dx
        let sourceY = y - vector.dy
        guard sourceX >= 0, sourceY >= 0, sourceX + Self.probeWidth <= old.width, sourceY < old.height else { return false }
        return memcmp(new.row(y, x: x), old.row(sourceY, x: sourceX), Self.probeWidth * 4) == 0
    }

    private func topCandidates(minimumVotes: Int) -> [MotionVector] {
        self.votes.filter { $0.value >= minimumVotes }
            .sorted { $0.value != $1.value ? $0.value > $1.value : ($0.key.dy, $0.key.dx) < ($1.key.dy, $1.key.dx) }
            .prefix(4)
            .map(\.key)
    }

    /// A probe position in the tile: the first place on a middle row where two
    /// neighbouring pixels differ, so the probe is not a flat run that matches anywhere.
    private static func probe(in tile: TileRect, new: PixelView) -> (Int, Int)? {
        guard tile.width >= Self.probeWidth else { return nil }
        // Rows 7 apart from the middle: not all on the same line of a 16-pixel text grid.
        for step in 0..<min(12, tile.height) {
            let y = tile.y + (tile.height / 2 + step * 7) % tile.height
            let row = new.row(y)
            var x = tile.x
            while x + Self.probeWidth <= tile.x + tile.width {
                if row.loadUnaligned(fromByteOffset: x * 4, as: UInt32.self)
                    != row.loadUnaligned(fromByteOffset: x * 4 + 4, as: UInt32.self)
                {
                    return (x, y)
                }
                x += 1
            }
        }
        return nil
    }

    @inline(__always)
    static func isUniform(_ row: UnsafeRawPointer, length: Int) -> Bool {
        memcmp(row, row + 4, length - 4) == 0
    }

    @inline(__always)
    static func hash(_ row: UnsafeRawPointer, length: Int) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(length)
        var offset = 0
        while offset + 8 <= length {
            hash = (hash ^ row.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* 0x0000_0100_0000_01B3
            hash ^= hash >> 29
            offset += 8
        }
        if offset < length {
            hash = (hash ^ UInt64(row.loadUnaligned(fromByteOffset: offset, as: UInt32.self))) &* 0x0000_0100_0000_01B3
            hash ^= hash >> 29
        }
        return hash
    }
}
