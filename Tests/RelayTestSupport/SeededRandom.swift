// A seeded random number generator for every test target: the same sequence for a seed
// on every platform, for data that must be the same in each run and each place.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and the same sequence for a seed on
/// every platform, which `SystemRandomNumberGenerator` is not.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The seed of case `index` of a run seeded with `base`: well spread, so neighbouring
    /// cases share nothing, and printable on its own.
    public static func caseSeed(base: UInt64, index: Int) -> UInt64 {
        var mixer = SeededRandom(seed: base ^ (UInt64(truncatingIfNeeded: index) &* 0xD1B5_4A32_D192_ED03))
        return mixer.next()
    }

    public mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    public mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &self) }

    /// True with probability 1 / `n`.
    public mutating func oneIn(_ n: Int) -> Bool { self.int(0..<n) == 0 }

    public mutating func pick<C: Collection>(_ collection: C) -> C.Element {
        collection.randomElement(using: &self)!
    }

    /// A uniformly random integer of any fixed width, all bits random.
    public mutating func bits<T: FixedWidthInteger & UnsignedInteger>(_: T.Type = T.self) -> T {
        T(truncatingIfNeeded: self.next())
    }

    /// Mostly uniform, but one time in eight an edge value (0, 1, max − 1, max, the top bit).
    public mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type = T.self) -> T {
        if self.oneIn(8) {
            return self.pick([T.zero, 1, T.max - 1, T.max, T(1) << (T.bitWidth - 1)])
        }
        return self.bits(T.self)
    }

    public mutating func bytes(count: Int) -> [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(count + 8)
        while result.count < count {
            withUnsafeBytes(of: self.next()) { result.append(contentsOf: $0) }
        }
        result.removeLast(result.count - count)
        return result
    }

    /// A size between 1 and `maximum` spread evenly over orders of magnitude, so that
    /// single bytes, a few bytes and whole 64 KiB reads all occur often.
    public mutating func logUniformSize(maximum: Int) -> Int {
        let exponent = self.int(0...(Int.bitWidth - 1 - maximum.leadingZeroBitCount))
        let low = 1 << exponent
        return min(maximum, self.int(low...(2 * low - 1)))
    }
}
