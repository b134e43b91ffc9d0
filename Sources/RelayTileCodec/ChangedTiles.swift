/// The 64×64 tiles of a frame (the encoder's grid, PROTOCOL.md §7.5) that may differ from
/// the frame before it; every pixel outside them is known to be unchanged.
///
/// A screen source that learns what was drawn (the X server's DAMAGE extension) marks the
/// drawn rectangles here, reads only ``rectangles(maximumCount:)`` from the screen, and
/// hands the set to ``TileEncoder/encodeParts(_:changes:requestID:fullRefresh:maximumBodyLength:)``,
/// which then compares and encodes only these tiles: a clock's second hand costs a tile,
/// not a frame. Pure; no I/O.
public struct ChangedTiles: Sendable, Hashable {
    /// A rectangle of the frame in pixels.
    public struct Rectangle: Sendable, Hashable {
        public var x: Int
        public var y: Int
        public var width: Int
        public var height: Int

        public init(x: Int, y: Int, width: Int, height: Int) {
            self.x = x
            self.y = y
            self.width = width
            self.height = height
        }
    }

    /// The frame's size in pixels.
    public let width: Int
    public let height: Int
    /// The grid's size in tiles; edge tiles are smaller than 64×64.
    public let columns: Int
    public let rows: Int
    /// Per tile, row-major: whether it may have changed.
    private var marked: [Bool]
    /// How many tiles are marked.
    public private(set) var count = 0

    static var tileSize: Int { TileUpdateFormat.tileSize }

    /// No tile of a `width`×`height` frame marked.
    public init(width: Int, height: Int) {
        precondition(width > 0 && height > 0, "a frame has at least one pixel")
        self.width = width
        self.height = height
        self.columns = (width + Self.tileSize - 1) / Self.tileSize
        self.rows = (height + Self.tileSize - 1) / Self.tileSize
        self.marked = Array(repeating: false, count: self.columns * self.rows)
    }

    /// Every tile of a `width`×`height` frame marked.
    public static func all(width: Int, height: Int) -> ChangedTiles {
        var tiles = ChangedTiles(width: width, height: height)
        tiles.insert(x: 0, y: 0, width: width, height: height)
        return tiles
    }

    public var isEmpty: Bool { self.count == 0 }

    /// Every tile is marked: reading the whole frame costs no more than reading these.
    public var isEverything: Bool { self.count == self.marked.count }

    /// Marks every tile the rectangle touches; the part outside the frame is ignored, and
    /// an empty rectangle marks nothing.
    public mutating func insert(x: Int, y: Int, width: Int, height: Int) {
        let left = max(x, 0)
        let top = max(y, 0)
        let right = min(x + width, self.width)
        let bottom = min(y + height, self.height)
        guard left < right, top < bottom else { return }
        let tile = Self.tileSize
        for row in (top / tile)...((bottom - 1) / tile) {
            for column in (left / tile)...((right - 1) / tile) where !self.marked[row * self.columns + column] {
                self.marked[row * self.columns + column] = true
                self.count += 1
            }
        }
    }

    /// Whether the tile at `column`, `row` of the grid is marked.
    @inline(__always)
    public func contains(column: Int, row: Int) -> Bool {
        self.marked[row * self.columns + column]
    }

    /// Whether tile `index` (row-major) is marked.
    @inline(__always)
    func contains(index: Int) -> Bool { self.marked[index] }

    /// Tile `column`, `row` in pixels, clipped to the frame.
    public func rectangle(column: Int, row: Int) -> Rectangle {
        let tile = Self.tileSize
        let x = column * tile
        let y = row * tile
        return Rectangle(x: x, y: y, width: min(tile, self.width - x), height: min(tile, self.height - y))
    }

    /// The marked tiles as at most `maximumCount` rectangles of the frame (clipped to it),
    /// top to bottom: what a source reads from the screen, one request each. Runs of
    /// marked tiles along each tile row, merged down the rows where they span the same
    /// columns. When that gives more than `maximumCount`, each tile row becomes one run
    /// from its first to its last marked tile; then each band of consecutive marked rows
    /// one rectangle; then the bounding box. Every marked tile is covered; merging may
    /// cover unmarked ones too (reading a few more pixels is cheaper than another request).
    public func rectangles(maximumCount: Int) -> [Rectangle] {
        precondition(maximumCount >= 1, "at least one rectangle")
        guard !self.isEmpty else { return [] }
        let exact = self.merged(self.runs(spanning: false))
        if exact.count <= maximumCount { return self.pixels(exact) }
        let spans = self.merged(self.runs(spanning: true))
        if spans.count <= maximumCount { return self.pixels(spans) }
        let bands = self.bands(spans)
        if bands.count <= maximumCount { return self.pixels(bands) }
        let box = bands.dropFirst().reduce(bands[0]) { box, band in
            let left = min(box.column, band.column)
            let right = max(box.column + box.width, band.column + band.width)
            return TileSpan(column: left, width: right - left, row: box.row, height: band.row + band.height - box.row)
        }
        return self.pixels([box])
    }

    /// A rectangle in tiles.
    struct TileSpan: Hashable {
        var column: Int
        var width: Int
        var row: Int
        var height: Int
    }

    /// One-row spans: the runs of marked tiles of each row, or (`spanning`) one span per
    /// row from its first to its last marked tile.
    private func runs(spanning: Bool) -> [TileSpan] {
        var runs: [TileSpan] = []
        for row in 0..<self.rows {
            var column = 0
            var first: Int?
            var last = 0
            while column < self.columns {
                guard self.contains(column: column, row: row) else {
                    column += 1
                    continue
                }
                var end = column + 1
                while end < self.columns, self.contains(column: end, row: row) { end += 1 }
                if spanning {
                    first = first ?? column
                    last = end
                } else {
                    runs.append(TileSpan(column: column, width: end - column, row: row, height: 1))
                }
                column = end
            }
            if let first { runs.append(TileSpan(column: first, width: last - first, row: row, height: 1)) }
        }
        return runs
    }

    /// Spans of the row above with the same columns grow down instead of starting anew.
    private func merged(_ runs: [TileSpan]) -> [TileSpan] {
        var finished: [TileSpan] = []
        var open: [TileSpan] = []
        var openRow = -1
        for run in runs {
            if run.row != openRow {
                // Spans not continued on the row just finished are done.
                let continuing = open.filter { $0.row + $0.height == run.row }
                finished += open.filter { $0.row + $0.height != run.row }
                open = continuing
                openRow = run.row
            }
            if let index = open.firstIndex(where: { $0.column == run.column && $0.width == run.width && $0.row + $0.height == run.row }) {
                open[index].height += 1
            } else {
                open.append(run)
            }
        }
        finished += open
        finished.sort { ($0.row, $0.column) < ($1.row, $1.column) }
        return finished
    }

    /// Consecutive tile rows with marks as one span each, as wide as their spans together.
    private func bands(_ spans: [TileSpan]) -> [TileSpan] {
        var rowSpans = [TileSpan?](repeating: nil, count: self.rows)
        for span in spans {
            for row in span.row..<(span.row + span.height) {
                if let existing = rowSpans[row] {
                    let left = min(existing.column, span.column)
                    let right = max(existing.column + existing.width, span.column + span.width)
                    rowSpans[row] = TileSpan(column: left, width: right - left, row: row, height: 1)
                } else {
                    rowSpans[row] = TileSpan(column: span.column, width: span.width, row: row, height: 1)
                }
            }
        }
        var bands: [TileSpan] = []
        for case let span? in rowSpans {
            if var band = bands.last, band.row + band.height == span.row {
                let left = min(band.column, span.column)
                let right = max(band.column + band.width, span.column + span.width)
                band = TileSpan(column: left, width: right - left, row: band.row, height: band.height + 1)
                bands[bands.count - 1] = band
            } else {
                bands.append(span)
            }
        }
        return bands
    }

    private func pixels(_ spans: [TileSpan]) -> [Rectangle] {
        let tile = Self.tileSize
        return spans.map { span in
            let x = span.column * tile
            let y = span.row * tile
            return Rectangle(x: x, y: y, width: min(span.width * tile, self.width - x), height: min(span.height * tile, self.height - y))
        }
    }
}
