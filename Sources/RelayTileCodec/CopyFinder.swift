#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The encoder's copy rectangles (PROTOCOL.md §7.4.1, §7.5): which changed tiles are
// content that moved, merged into as few rectangles as the tile grid allows, each widened
// past the grid while the moved content still matches. MotionSearch proposes the
// vectors; every tile is verified against the previous frame before a copy covers it.

/// A copy rectangle (§7.4.1): `rect` of the new frame is `rect` moved back by `vector`
/// in the previous one.
struct TileCopy {
    var rect: TileRect
    var vector: MotionVector
}

struct CopyFinder {
    private var motion = MotionSearch()
    /// The last vectors that found copies, most recent first: a scroll or a drag usually
    /// goes on, also after updates in between that moved nothing (a keystroke, a clock).
    private var recentVectors: [MotionVector] = []
    /// How many of them are tried first on every update.
    static let recentVectorsKept = 4

    /// Finds the changed tiles (`dirty`, row-major over `grid`) that are moved content,
    /// and appends their copies to `copies`: vertical scrolls from row hashes, then, when
    /// those explain little, window moves from a 2-D probe search. Returns how many tiles
    /// of the grid the copies cover (before they are widened past it).
    mutating func find(
        old: PixelView,
        new: PixelView,
        dirty: [Bool],
        grid: TileGrid,
        into copies: inout [TileCopy]
    ) -> Int {
        let (columns, rows) = (grid.columns, grid.rows)
        var changed: [Int] = []
        for index in dirty.indices where dirty[index] { changed.append(index) }
        // A keystroke changes a tile or two: nothing moved, and searching costs more
        // than it could save.
        guard changed.count >= 2 else { return 0 }

        func rect(_ index: Int) -> TileRect { grid.rect(index, width: new.width, height: new.height) }
        var vectorOfTile = [Int: MotionVector]()

        func assign(_ candidates: [MotionVector], to tiles: [Int]) -> [Int] {
            var unmatched: [Int] = []
            for index in tiles {
                let tileRect = rect(index)
                if let vector = candidates.first(where: { MotionSearch.tileMatches(tileRect, old: old, new: new, vector: $0) }) {
                    vectorOfTile[index] = vector
                } else {
                    unmatched.append(index)
                }
            }
            return unmatched
        }

        // Vertical candidates from the (up to) three tile columns with most changes.
        var perColumn = [Int](repeating: 0, count: columns)
        for index in changed { perColumn[index % columns] += 1 }
        let busiest = perColumn.indices.filter { perColumn[$0] > 0 }
            .sorted { perColumn[$0] != perColumn[$1] ? perColumn[$0] > perColumn[$1] : $0 < $1 }
            .prefix(3)
        var candidates = self.recentVectors
        for vector in self.motion.verticalCandidates(
            old: old,
            new: new,
            dirtyColumns: Array(busiest),
            dirtyRowsInColumn: { column in (0..<rows).filter { dirty[$0 * columns + column] } }
        ) where !candidates.contains(vector) {
            candidates.append(vector)
        }
        let unmatched = candidates.isEmpty ? changed : assign(candidates, to: changed)

        // A window drag leaves many tiles unexplained by any vertical offset.
        if unmatched.count >= 4 && unmatched.count * 2 > changed.count {
            let step = max(1, unmatched.count / 12)
            let probes = stride(from: 0, to: unmatched.count, by: step).prefix(12).map { rect(unmatched[$0]) }
            let windowVectors = self.motion.windowCandidates(old: old, new: new, probeTiles: probes, dirty: dirty, grid: grid)
                .filter { !candidates.contains($0) }
            if !windowVectors.isEmpty { _ = assign(windowVectors, to: unmatched) }
        }
        guard !vectorOfTile.isEmpty else { return 0 }

        var used: [MotionVector] = []
        let tile = TileUpdateFormat.tileSize
        for run in Self.mergeRuns(vectorOfTile, grid: grid) {
            let left = run.column * tile
            let top = run.row * tile
            let start = TileRect(
                x: left, y: top, width: min(run.width * tile, new.width - left), height: min(run.height * tile, new.height - top)
            )
            copies.append(TileCopy(rect: Self.grow(start, vector: run.vector, old: old, new: new), vector: run.vector))
            if !used.contains(run.vector) { used.append(run.vector) }
        }
        self.recentVectors = Array((used + self.recentVectors.filter { !used.contains($0) }).prefix(Self.recentVectorsKept))
        return vectorOfTile.count
    }

    /// Copied tiles merged into rectangles of tiles, in the grid's units.
    struct CopyRun {
        var column: Int
        var width: Int
        var row: Int
        var height: Int
        var vector: MotionVector
    }

    /// Merges the copied tiles into rectangles: runs of one vector along each tile row,
    /// then runs of equal runs down the rows; sorted top to bottom, left to right. All
    /// copies read the pre-update framebuffer (§7.4.1), so their order does not matter
    /// to the viewer; a fixed order keeps the encoder's output reproducible.
    static func mergeRuns(_ vectorOfTile: [Int: MotionVector], grid: TileGrid) -> [CopyRun] {
        let columns = grid.columns
        var finished: [CopyRun] = []
        var open: [CopyRun] = []
        for row in 0..<grid.rows {
            var runs: [CopyRun] = []
            var column = 0
            while column < columns {
                guard let vector = vectorOfTile[row * columns + column] else {
                    column += 1
                    continue
                }
                var end = column + 1
                while end < columns, vectorOfTile[row * columns + end] == vector { end += 1 }
                runs.append(CopyRun(column: column, width: end - column, row: row, height: 1, vector: vector))
                column = end
            }
            var stillOpen: [CopyRun] = []
            for run in runs {
                if let at = open.firstIndex(where: {
                    $0.column == run.column && $0.width == run.width && $0.vector == run.vector
                }) {
                    var grown = open.remove(at: at)
                    grown.height += 1
                    stillOpen.append(grown)
                } else {
                    stillOpen.append(run)
                }
            }
            finished += open
            open = stillOpen
        }
        finished += open
        finished.sort { ($0.row, $0.column) < ($1.row, $1.column) }
        return finished
    }

    /// Widens a verified copy past the tile grid, one pixel column or row at a time, up
    /// to a tile each way, while the moved content still matches: a scrolled page or a
    /// window rarely starts on a multiple of 64.
    static func grow(_ start: TileRect, vector: MotionVector, old: PixelView, new: PixelView) -> TileRect {
        var rect = start
        let reach = TileUpdateFormat.tileSize - 1
        func columnMatches(_ x: Int) -> Bool {
            let sourceX = x - vector.dx
            guard x >= 0, x < new.width, sourceX >= 0, sourceX < old.width else { return false }
            for y in rect.y..<(rect.y + rect.height)
            where new.row(y).loadUnaligned(fromByteOffset: x &* 4, as: UInt32.self)
                != old.row(y - vector.dy).loadUnaligned(fromByteOffset: sourceX &* 4, as: UInt32.self)
            {
                return false
            }
            return true
        }
        func rowMatches(_ y: Int) -> Bool {
            let sourceY = y - vector.dy
            guard y >= 0, y < new.height, sourceY >= 0, sourceY < old.height else { return false }
            return memcmp(new.row(y, x: rect.x), old.row(sourceY, x: rect.x - vector.dx), rect.width &* 4) == 0
        }
        var steps = 0
        while steps < reach, columnMatches(rect.x - 1) {
            rect.x -= 1
            rect.width += 1
            steps += 1
        }
        steps = 0
        while steps < reach, columnMatches(rect.x + rect.width) {
            rect.width += 1
            steps += 1
        }
        steps = 0
        while steps < reach, rowMatches(rect.y - 1) {
            rect.y -= 1
            rect.height += 1
            steps += 1
        }
        steps = 0
        while steps < reach, rowMatches(rect.y + rect.height) {
            rect.height += 1
            steps += 1
        }
        return rect
    }
}
