import NIOCore
import RelayScreen
import RelayTileCodec
import Testing

/// The damage path's pure parts: damage rectangles → marked tiles → the rectangles a
/// source reads (ChangedTiles), and the encoder told which tiles changed producing exactly
/// what it produces when it compares whole frames.
@Suite struct ChangedTilesTests {
    /// The marked tiles as "column,row" strings, for readable expectations.
    private static func marked(_ tiles: ChangedTiles) -> [String] {
        var names: [String] = []
        for row in 0..<tiles.rows {
            for column in 0..<tiles.columns where tiles.contains(column: column, row: row) { names.append("\(column),\(row)") }
        }
        return names
    }

    @Test("a rectangle marks every tile it touches, clipped to the frame; an empty one marks nothing")
    func rectanglesMarkTheTilesTheyTouch() {
        // 200×100: 4×2 tiles, the last column 8 wide and the last row 36 high.
        var tiles = ChangedTiles(width: 200, height: 100)
        #expect(tiles.columns == 4 && tiles.rows == 2 && tiles.isEmpty)
        tiles.insert(x: 10, y: 10, width: 5, height: 5)
        #expect(Self.marked(tiles) == ["0,0"])
        // 63…64 crosses a tile edge both ways.
        tiles.insert(x: 63, y: 63, width: 2, height: 2)
        #expect(Self.marked(tiles) == ["0,0", "1,0", "0,1", "1,1"])
        #expect(tiles.count == 4)
        // Partly off the frame (X servers report damage of windows beyond the screen too).
        tiles.insert(x: 195, y: -50, width: 500, height: 60)
        #expect(Self.marked(tiles) == ["0,0", "1,0", "3,0", "0,1", "1,1"])
        tiles.insert(x: 100, y: 100, width: 10, height: 10)
        tiles.insert(x: -20, y: 0, width: 20, height: 10)
        tiles.insert(x: 0, y: 0, width: 0, height: 10)
        #expect(tiles.count == 5)
        #expect(!tiles.isEverything)
        #expect(ChangedTiles.all(width: 200, height: 100).isEverything)
        #expect(tiles.rectangle(column: 3, row: 1) == .init(x: 192, y: 64, width: 8, height: 36))
    }

    @Test("tiles are read as runs along rows, merged down rows of the same span, clipped to the frame")
    func exactRuns() {
        var tiles = ChangedTiles(width: 300, height: 200)  // 5×4 tiles, edges 44 and 8
        // A 2×2 block, and a lone tile at the frame's bottom-right corner.
        tiles.insert(x: 64, y: 0, width: 128, height: 128)
        tiles.insert(x: 299, y: 199, width: 1, height: 1)
        #expect(
            tiles.rectangles(maximumCount: 10) == [
                .init(x: 64, y: 0, width: 128, height: 128),
                .init(x: 256, y: 192, width: 44, height: 8),
            ])
        // Two runs on one row, one of which continues below.
        var split = ChangedTiles(width: 300, height: 200)
        split.insert(x: 0, y: 0, width: 64, height: 128)
        split.insert(x: 192, y: 0, width: 64, height: 64)
        #expect(
            split.rectangles(maximumCount: 10) == [
                .init(x: 0, y: 0, width: 64, height: 128),
                .init(x: 192, y: 0, width: 64, height: 64),
            ])
        #expect(ChangedTiles(width: 300, height: 200).rectangles(maximumCount: 1).isEmpty)
    }

    @Test("over the limit, rows become one span each, then bands, then the bounding box; every tile stays covered")
    func mergingUnderALimit() {
        // A checkerboard on a 10×6 grid: 30 single tiles.
        var board = ChangedTiles(width: 640, height: 384)
        for row in 0..<6 {
            for column in 0..<10 where (row + column) % 2 == 0 {
                board.insert(x: column * 64, y: row * 64, width: 1, height: 1)
            }
        }
        #expect(board.rectangles(maximumCount: 30).count == 30)
        // Spans per row: rows alternate 0…8 and 1…9, so none merge down: 6.
        let spans = board.rectangles(maximumCount: 29)
        #expect(spans.count == 6)
        #expect(spans[0] == .init(x: 0, y: 0, width: 576, height: 64))
        #expect(spans[1] == .init(x: 64, y: 64, width: 576, height: 64))
        // One band of consecutive rows.
        #expect(board.rectangles(maximumCount: 5) == [.init(x: 0, y: 0, width: 640, height: 384)])
        // Two bands (a gap row between), then the box around both.
        var two = ChangedTiles(width: 640, height: 384)
        two.insert(x: 0, y: 0, width: 1, height: 1)
        two.insert(x: 200, y: 0, width: 1, height: 1)
        two.insert(x: 300, y: 64, width: 1, height: 1)
        two.insert(x: 100, y: 256, width: 1, height: 1)
        two.insert(x: 500, y: 256, width: 1, height: 1)
        #expect(
            two.rectangles(maximumCount: 2) == [
                .init(x: 0, y: 0, width: 320, height: 128),
                .init(x: 64, y: 256, width: 448, height: 64),
            ])
        #expect(two.rectangles(maximumCount: 1) == [.init(x: 0, y: 0, width: 512, height: 320)])
        for limit in 1...12 {
            for rectangles in [board.rectangles(maximumCount: limit), two.rectangles(maximumCount: limit)] {
                #expect(rectangles.count <= limit)
            }
            #expect(Self.covers(board.rectangles(maximumCount: limit), board))
            #expect(Self.covers(two.rectangles(maximumCount: limit), two))
        }
    }

    private static func covers(_ rectangles: [ChangedTiles.Rectangle], _ tiles: ChangedTiles) -> Bool {
        var covered = ChangedTiles(width: tiles.width, height: tiles.height)
        for rectangle in rectangles { covered.insert(x: rectangle.x, y: rectangle.y, width: rectangle.width, height: rectangle.height) }
        for row in 0..<tiles.rows {
            for column in 0..<tiles.columns where tiles.contains(column: column, row: row) && !covered.contains(column: column, row: row) {
                return false
            }
        }
        return true
    }

    @Test("told which tiles changed (and some that did not), the encoder writes exactly what whole-frame compares write")
    func encoderWithChangesMatchesWholeFrameCompares() throws {
        var scene = DesktopScene(width: 800, height: 480, seed: 7)
        var random = SystemRandomNumberGenerator()
        let comparing = TileEncoder()
        let told = TileEncoder()
        let decoder = TileDecoder()
        decoder.resize(width: scene.width, height: scene.height)
        var previous = scene.render()
        let first = try #require(try told.encode(previous, requestID: 1, fullRefresh: true))
        #expect(try comparing.encode(previous, requestID: 1, fullRefresh: true) == first)
        _ = try decoder.apply(first)
        for step in 0..<40 {
            switch step % 4 {
            case 0: scene.scroll(by: 16 * (1 + step % 3))
            case 1: scene.moveWindow(dx: 24, dy: -12 + step % 25)
            case 2: scene.type(UInt8(ascii: "a") + UInt8(step % 26), column: step)
            default: break  // nothing changes: an empty set
            }
            let frame = scene.render()
            // What DAMAGE would report: the changed tiles, plus a few drawn over with the
            // same pixels (a clock redrawn unchanged).
            var changes = ChangedTiles(width: frame.width, height: frame.height)
            for row in 0..<changes.rows {
                for column in 0..<changes.columns {
                    let tile = changes.rectangle(column: column, row: row)
                    let differs = (tile.y..<(tile.y + tile.height)).contains { y in
                        let start = (y * frame.width + tile.x) * 4
                        return frame.pixels[start..<(start + tile.width * 4)] != previous.pixels[start..<(start + tile.width * 4)]
                    }
                    if differs || Int.random(in: 0..<40, using: &random) == 0 {
                        changes.insert(x: tile.x, y: tile.y, width: 1, height: 1)
                    }
                }
            }
            let requestID = UInt32(step + 2)
            let expected = try comparing.encodeParts(frame, requestID: requestID, fullRefresh: false, maximumBodyLength: 65_536)
            let got = try told.encodeParts(frame, changes: changes, requestID: requestID, fullRefresh: false, maximumBodyLength: 65_536)
            let identical = got == expected
            #expect(identical, "step \(step): the bodies differ")
            #expect(told.lastUpdateStatistics == comparing.lastUpdateStatistics, "step \(step)")
            for body in got { _ = try decoder.apply(body) }
            let decoded = decoder.framebuffer == frame
            #expect(decoded, "step \(step)")
            previous = frame
        }
    }
}
