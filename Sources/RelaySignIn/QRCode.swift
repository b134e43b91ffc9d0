/// A QR code (ISO/IEC 18004:2015) of a text: the enrolment page shows the `otpauth://` URI
/// this way so that an authenticator app can scan it.
///
/// Byte mode only: the text's UTF-8 bytes, with no ECI header (authenticator apps read the URI
/// as UTF-8). The code takes the smallest version (1–40) that holds the bytes at the chosen
/// error correction level, and of the eight data masks the one with the lowest penalty score
/// (section 7.8.3).
public struct QRCode: Sendable {
    /// How much of the symbol may be unreadable and still be restored; more correction leaves
    /// room for fewer bytes.
    public enum Correction: Sendable, CaseIterable {
        /// About 7% of the codewords.
        case low
        /// About 15% of the codewords; the usual level for a code on a screen.
        case medium
        /// About 25% of the codewords.
        case quartile
        /// About 30% of the codewords.
        case high

        /// The row of the tables below (L, M, Q, H).
        fileprivate var index: Int {
            switch self {
            case .low: 0
            case .medium: 1
            case .quartile: 2
            case .high: 3
            }
        }

        /// The two bits that stand for the level in the format information (section 7.9.1).
        fileprivate var formatBits: Int {
            switch self {
            case .low: 0b01
            case .medium: 0b00
            case .quartile: 0b11
            case .high: 0b10
            }
        }
    }

    /// The symbol version, 1–40.
    public let version: Int
    /// Modules per side without the quiet zone: 17 + 4 × version.
    public let size: Int
    /// The error correction level.
    public let correction: Correction
    /// The data mask pattern the penalty score chose, 0–7.
    public let mask: Int
    /// Row-major, `size` × `size`.
    private let modules: [Bool]

    /// The light margin on each side that readers need, in modules.
    public static let quietZone = 4

    /// Encodes `text`; throws a ``SignInError`` of kind ``SignInError/Kind/malformed`` when
    /// its UTF-8 bytes do not fit into a version 40 symbol at `correction`.
    public init(_ text: String, correction: Correction = .medium) throws {
        let bytes = Array(text.utf8)
        guard let version = (1...40).first(where: { Self.byteCapacity(version: $0, correction: correction) >= bytes.count }) else {
            let most = Self.byteCapacity(version: 40, correction: correction)
            throw SignInError(
                .malformed,
                "The text for the QR code is \(bytes.count) bytes long, but a QR code holds at most \(most) bytes at this error correction level. "
                    + "Use a shorter text or a lower error correction level.")
        }
        var grid = Grid(version: version)
        grid.place(Self.codewords(bytes, version: version, correction: correction))
        var best = (mask: 0, grid: grid, penalty: Int.max)
        for mask in 0..<8 {
            var candidate = grid
            candidate.apply(mask: mask)
            // The encoding procedure (section 7.1) scores the masks before it adds the format
            // and version information (step 6 before step 7): those modules are light here.
            let penalty = candidate.penalty()
            if penalty < best.penalty { best = (mask, candidate, penalty) }
        }
        best.grid.drawFormatAndVersion(correction: correction, mask: best.mask)
        self.version = version
        self.size = grid.size
        self.correction = correction
        self.mask = best.mask
        self.modules = best.grid.dark
    }

    /// Whether the module in column `x`, row `y` is dark; (0, 0) is the top left module of
    /// the symbol. Modules outside the symbol (the quiet zone and beyond) are light.
    public func isDark(x: Int, y: Int) -> Bool {
        guard (0..<self.size).contains(x), (0..<self.size).contains(y) else { return false }
        return self.modules[y * self.size + x]
    }

    /// The code as a standalone SVG element with its quiet zone: a white background and
    /// one path of the dark modules, `moduleSize` pixels per module. Colours are `fill`
    /// attributes, so the SVG can be inlined in a page under a CSP without inline styles.
    public func svg(moduleSize: Int = 4) -> String {
        precondition(moduleSize > 0, "a module is at least one pixel")
        let side = self.size + 2 * Self.quietZone
        var path = ""
        for y in 0..<self.size {
            var x = 0
            while x < self.size {
                guard self.isDark(x: x, y: y) else {
                    x += 1
                    continue
                }
                let start = x
                while x < self.size, self.isDark(x: x, y: y) { x += 1 }
                path += "M\(start + Self.quietZone) \(y + Self.quietZone)h\(x - start)v1h-\(x - start)z"
            }
        }
        let pixels = side * moduleSize
        return """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(pixels)" height="\(pixels)" viewBox="0 0 \(side) \(side)" \
            shape-rendering="crispEdges" role="img"><title>QR code for your authenticator app</title>\
            <rect width="\(side)" height="\(side)" fill="#fff"/><path fill="#000" d="\(path)"/></svg>
            """
    }
}

// MARK: - Codewords (sections 7.4–7.6)

extension QRCode {
    /// Error correction codewords per block, by level (L, M, Q, H) and version (Table 9).
    private static let eccPerBlock: [[Int]] = [
        // L: versions 1–20, 21–40
        [
            7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28,
            28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30,
        ],
        // M: versions 1–20, 21–40
        [
            10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26,
            26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28,
        ],
        // Q: versions 1–20, 21–40
        [
            13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30,
            28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30,
        ],
        // H: versions 1–20, 21–40
        [
            17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28,
            30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30,
        ],
    ]

    /// Error correction blocks, by level (L, M, Q, H) and version (Table 9).
    private static let blockCount: [[Int]] = [
        // L: versions 1–20, 21–40
        [
            1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8,
            8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25,
        ],
        // M: versions 1–20, 21–40
        [
            1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16,
            17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49,
        ],
        // Q: versions 1–20, 21–40
        [
            1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20,
            23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68,
        ],
        // H: versions 1–20, 21–40
        [
            1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25,
            25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81,
        ],
    ]

    /// All codewords of a version: the modules left after the function patterns and the
    /// format and version information, in whole bytes.
    private static func totalCodewords(version: Int) -> Int {
        var modules = (16 * version + 128) * version + 64
        if version >= 2 {
            let alignments = version / 7 + 2
            modules -= (25 * alignments - 10) * alignments - 55
            if version >= 7 { modules -= 36 }
        }
        return modules / 8
    }

    private static func dataCodewords(version: Int, correction: Correction) -> Int {
        Self.totalCodewords(version: version)
            - Self.eccPerBlock[correction.index][version - 1] * Self.blockCount[correction.index][version - 1]
    }

    /// Bits of the character count in byte mode.
    private static func countBits(version: Int) -> Int { version <= 9 ? 8 : 16 }

    /// The most bytes a version holds at a level: the data codewords less the mode indicator
    /// and the character count.
    private static func byteCapacity(version: Int, correction: Correction) -> Int {
        (Self.dataCodewords(version: version, correction: correction) * 8 - 4 - Self.countBits(version: version)) / 8
    }

    /// The final message: data codewords of one byte-mode segment, padded, split into
    /// blocks, each block's Reed–Solomon codewords, all interleaved (section 7.6).
    private static func codewords(_ bytes: [UInt8], version: Int, correction: Correction) -> [UInt8] {
        let dataCount = Self.dataCodewords(version: version, correction: correction)
        var bits: [Bool] = []
        func append(_ value: Int, _ count: Int) {
            for shift in (0..<count).reversed() { bits.append((value >> shift) & 1 == 1) }
        }
        append(0b0100, 4)
        append(bytes.count, Self.countBits(version: version))
        for byte in bytes { append(Int(byte), 8) }
        // Terminator (up to four zero bits), then zero bits to a whole byte (section 7.4.10).
        append(0, min(4, dataCount * 8 - bits.count))
        append(0, (8 - bits.count % 8) % 8)
        var data = stride(from: 0, to: bits.count, by: 8).map { start in
            bits[start..<start + 8].reduce(UInt8(0)) { $0 << 1 | ($1 ? 1 : 0) }
        }
        for pad in 0..<dataCount - data.count { data.append(pad % 2 == 0 ? 0xEC : 0x11) }

        // The later blocks are one data codeword longer when the codewords do not divide evenly.
        let blocks = Self.blockCount[correction.index][version - 1]
        let eccCount = Self.eccPerBlock[correction.index][version - 1]
        let longBlocks = dataCount % blocks
        let divisor = Self.generator(degree: eccCount)
        var dataBlocks: [[UInt8]] = []
        var eccBlocks: [[UInt8]] = []
        var offset = 0
        for block in 0..<blocks {
            let length = dataCount / blocks + (block >= blocks - longBlocks ? 1 : 0)
            let blockData = Array(data[offset..<offset + length])
            offset += length
            dataBlocks.append(blockData)
            eccBlocks.append(Self.remainder(of: blockData, dividedBy: divisor))
        }
        func interleave(_ blocks: [[UInt8]]) -> [UInt8] {
            (0..<blocks.map(\.count).max()!).flatMap { column in blocks.compactMap { column < $0.count ? $0[column] : nil } }
        }
        return interleave(dataBlocks) + interleave(eccBlocks)
    }

    /// Product in GF(256) with the field's polynomial x⁸ + x⁴ + x³ + x² + 1 (section 7.5):
    /// shift-and-add, reducing whenever x⁸ appears.
    private static func multiply(_ x: UInt8, _ y: UInt8) -> UInt8 {
        var (shifted, remaining, product) = (Int(x), Int(y), 0)
        while remaining > 0 {
            if remaining & 1 == 1 { product ^= shifted }
            shifted <<= 1
            if shifted & 0x100 != 0 { shifted ^= 0x11D }
            remaining >>= 1
        }
        return UInt8(product)
    }

    /// The generator polynomial (x − α⁰)(x − α¹)…(x − α^(degree−1)), highest coefficient
    /// (always 1) left out, the others from high to low degree.
    private static func generator(degree: Int) -> [UInt8] {
        var coefficients = [UInt8](repeating: 0, count: degree)
        coefficients[degree - 1] = 1
        var root: UInt8 = 1
        for _ in 0..<degree {
            for index in 0..<degree {
                coefficients[index] = Self.multiply(coefficients[index], root)
                if index + 1 < degree { coefficients[index] ^= coefficients[index + 1] }
            }
            root = Self.multiply(root, 2)
        }
        return coefficients
    }

    /// The error correction codewords: the remainder of data × x^degree divided by the generator.
    private static func remainder(of data: [UInt8], dividedBy divisor: [UInt8]) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: divisor.count)
        for byte in data {
            let factor = byte ^ result.removeFirst()
            result.append(0)
            for index in result.indices { result[index] ^= Self.multiply(divisor[index], factor) }
        }
        return result
    }
}

// MARK: - The module grid (sections 6.3, 7.7–7.10)

/// The modules of a symbol while it is built; `reserved` marks function patterns and the
/// format and version information, which carry no data and are not masked.
private struct Grid {
    let version: Int
    let size: Int
    var dark: [Bool]
    var reserved: [Bool]

    init(version: Int) {
        self.version = version
        self.size = 17 + 4 * version
        self.dark = Array(repeating: false, count: self.size * self.size)
        self.reserved = self.dark
        for index in 0..<self.size {
            self.set(x: 6, y: index, index % 2 == 0)
            self.set(x: index, y: 6, index % 2 == 0)
        }
        for (left, top) in [(0, 0), (self.size - 7, 0), (0, self.size - 7)] {
            // The finder pattern and its light separator: rings by distance from the centre.
            for dy in -1...7 {
                for dx in -1...7 where (0..<self.size).contains(left + dx) && (0..<self.size).contains(top + dy) {
                    let ring = max(abs(dx - 3), abs(dy - 3))
                    self.set(x: left + dx, y: top + dy, ring != 2 && ring != 4)
                }
            }
        }
        // Alignment patterns on every pair of centres but where a finder pattern sits.
        let centres = self.alignmentCentres()
        let (first, last) = (centres.first ?? 0, centres.last ?? 0)
        for cx in centres {
            for cy in centres where ![(first, first), (last, first), (first, last)].contains(where: { $0 == (cx, cy) }) {
                for dy in -2...2 {
                    for dx in -2...2 { self.set(x: cx + dx, y: cy + dy, max(abs(dx), abs(dy)) != 1) }
                }
            }
        }
        // Format and version information and the dark module: reserved, light until the mask is chosen.
        for (x, y) in self.formatPositions().flatMap({ $0 }) + self.versionPositions().flatMap({ $0 }) + [(8, self.size - 8)] {
            self.set(x: x, y: y, false)
        }
    }

    private mutating func set(x: Int, y: Int, _ isDark: Bool) {
        self.dark[y * self.size + x] = isDark
        self.reserved[y * self.size + x] = true
    }

    /// Centre rows and columns of the alignment patterns (Annex E): 6, the last at size − 7,
    /// evenly spaced between by an even step counted from the last.
    private func alignmentCentres() -> [Int] {
        guard self.version >= 2 else { return [] }
        let count = self.version / 7 + 2
        let step = self.version == 32 ? 26 : (self.version * 4 + count * 2 + 1) / (count * 2 - 2) * 2
        return [6] + (0..<count - 1).map { self.size - 7 - step * $0 }.reversed()
    }

    /// Where bit i (0 the least significant) of the 15 format bits goes, in each of the two copies (section 7.9.1).
    private func formatPositions() -> [[(Int, Int)]] {
        let nearTopLeft = (0...5).map { (8, $0) } + [(8, 7), (8, 8), (7, 8)] + (9...14).map { (14 - $0, 8) }
        let split = (0...7).map { (self.size - 1 - $0, 8) } + (8...14).map { (8, self.size - 15 + $0) }
        return [nearTopLeft, split]
    }

    /// Where bit i of the 18 version bits goes, in each of the two copies (Figure 27); none below version 7.
    private func versionPositions() -> [[(Int, Int)]] {
        guard self.version >= 7 else { return [] }
        let upperRight = (0..<18).map { (self.size - 11 + $0 % 3, $0 / 3) }
        return [upperRight, upperRight.map { ($0.1, $0.0) }]
    }

    /// Places the bits of `codewords` in two-module columns, upwards and downwards in turn
    /// from the right, skipping the vertical timing pattern; remainder bits stay light (section 7.7.3).
    mutating func place(_ codewords: [UInt8]) {
        var bit = 0
        for right in stride(from: self.size - 1, to: 0, by: -2).map({ $0 <= 6 ? $0 - 1 : $0 }) {
            let upward = (right + 1) & 2 == 0
            for step in 0..<self.size {
                let y = upward ? self.size - 1 - step : step
                for x in [right, right - 1] where !self.reserved[y * self.size + x] {
                    if bit < codewords.count * 8 {
                        self.dark[y * self.size + x] = (codewords[bit / 8] >> (7 - bit % 8)) & 1 == 1
                    }
                    bit += 1
                }
            }
        }
    }

    /// Inverts the data modules where the mask pattern's condition holds (section 7.8.2; x is the column, y the row).
    mutating func apply(mask: Int) {
        for y in 0..<self.size {
            for x in 0..<self.size where !self.reserved[y * self.size + x] {
                let invert =
                    switch mask {
                    case 0: (x + y) % 2 == 0
                    case 1: y % 2 == 0
                    case 2: x % 3 == 0
                    case 3: (x + y) % 3 == 0
                    case 4: (y / 2 + x / 3) % 2 == 0
                    case 5: x * y % 2 + x * y % 3 == 0
                    case 6: (x * y % 2 + x * y % 3) % 2 == 0
                    default: ((x + y) % 2 + x * y % 3) % 2 == 0
                    }
                if invert { self.dark[y * self.size + x].toggle() }
            }
        }
    }

    /// The penalty score of section 7.8.3.1 (Table 11), lower is better.
    func penalty() -> Int {
        // Buffer pointers: in debug builds, array subscripts here dominate the encoding time.
        self.dark.withUnsafeBufferPointer { dark in
            let size = self.size
            var score = 0
            var line = [Bool](repeating: false, count: size)
            for vertical in [false, true] {
                for lineIndex in 0..<size {
                    for index in 0..<size { line[index] = dark[vertical ? index * size + lineIndex : lineIndex * size + index] }
                    score += line.withUnsafeBufferPointer { Self.runPenalty($0) + Self.finderPenalty($0) }
                }
            }
            // N2: 3 for each 2 × 2 block of one colour.
            for y in 1..<size {
                for x in 1..<size {
                    let index = y * size + x
                    let colour = dark[index]
                    if dark[index - 1] == colour && dark[index - size] == colour && dark[index - size - 1] == colour { score += 3 }
                }
            }
            // N4: 10 for each full 5% by which the dark share differs from 50%.
            var darkCount = 0
            for module in dark where module { darkCount += 1 }
            return score + 10 * (abs(darkCount * 20 - dark.count * 10) / dark.count)
        }
    }

    /// N1: 3 for five modules of one colour in a row or column, 1 more for each further one.
    private static func runPenalty(_ line: UnsafeBufferPointer<Bool>) -> Int {
        var score = 0
        var run = 1
        for index in 1...line.count {
            if index < line.count && line[index] == line[index - 1] {
                run += 1
            } else {
                if run >= 5 { score += run - 2 }
                run = 1
            }
        }
        return score
    }

    /// N3: 40 for each dark-light-dark-light-dark run of 1:1:3:1:1 in a row or column with
    /// four light modules before or after it; beyond the edge is the light quiet zone. The spec
    /// leaves overlaps open: like segno, the search resumes after a counted pattern.
    private static func finderPenalty(_ line: UnsafeBufferPointer<Bool>) -> Int {
        func isLight(_ range: Range<Int>) -> Bool {
            for index in range where index >= 0 && index < line.count && line[index] { return false }
            return true
        }
        var score = 0
        var start = 0
        while start + 7 <= line.count {
            let matches =
                line[start] && !line[start + 1] && line[start + 2] && line[start + 3] && line[start + 4] && !line[start + 5] && line[start + 6]
            if matches && (isLight(start - 4..<start) || isLight(start + 7..<start + 11)) {
                score += 40
                start += 7
            } else {
                start += 1
            }
        }
        return score
    }

    /// Draws the format information (level and mask, BCH(15,5) masked with 101010000010010,
    /// section 7.9), the dark module and, from version 7, the version information (BCH(18,6), section 7.10).
    mutating func drawFormatAndVersion(correction: QRCode.Correction, mask: Int) {
        let format = correction.formatBits << 3 | mask
        var check = format
        for _ in 0..<10 { check = (check << 1) ^ ((check >> 9) * 0x537) }
        let formatBits = (format << 10 | check) ^ 0x5412
        for copy in self.formatPositions() {
            for (bit, (x, y)) in copy.enumerated() { self.set(x: x, y: y, (formatBits >> bit) & 1 == 1) }
        }
        self.set(x: 8, y: self.size - 8, true)
        var versionCheck = self.version
        for _ in 0..<12 { versionCheck = (versionCheck << 1) ^ ((versionCheck >> 11) * 0x1F25) }
        let versionBits = self.version << 12 | versionCheck
        for copy in self.versionPositions() {
            for (bit, (x, y)) in copy.enumerated() { self.set(x: x, y: y, (versionBits >> bit) & 1 == 1) }
        }
    }
}
