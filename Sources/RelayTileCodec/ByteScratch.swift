// A growable byte area that the encoder writes rectangles into and the decoder keeps
// between updates: no per-rectangle or per-pixel allocation, no bounds checks in the
// inner loops (callers reserve first).

final class ByteScratch {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var capacity: Int
    var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 64)
        self.base = .allocate(capacity: self.capacity)
    }

    deinit { self.base.deallocate() }

    /// Makes room for `extra` more bytes after `count`.
    @inline(__always)
    func reserve(_ extra: Int) {
        if self.count + extra > self.capacity { self.grow(to: self.count + extra) }
    }

    private func grow(to needed: Int) {
        var newCapacity = self.capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: self.base, count: self.count)
        self.base.deallocate()
        self.base = newBase
        self.capacity = newCapacity
    }

    // The appenders below assume `reserve` made room.

    @inline(__always)
    func append(_ byte: UInt8) {
        self.base[self.count] = byte
        self.count += 1
    }

    @inline(__always)
    func appendU16(_ value: Int) {
        self.base[self.count] = UInt8(truncatingIfNeeded: value >> 8)
        self.base[self.count + 1] = UInt8(truncatingIfNeeded: value)
        self.count += 2
    }

    /// Overwrites the u16 big-endian at `offset`, inside what was written already.
    @inline(__always)
    func setU16(_ value: Int, at offset: Int) {
        assert(offset + 2 <= self.count, "setU16 past the bytes written")
        self.base[offset] = UInt8(truncatingIfNeeded: value >> 8)
        self.base[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    /// A pixel value as §7.3's three bytes blue, green, red, from `0x00RRGGBB`.
    @inline(__always)
    func appendPixel(_ rgb: UInt32) {
        self.base[self.count] = UInt8(truncatingIfNeeded: rgb)
        self.base[self.count + 1] = UInt8(truncatingIfNeeded: rgb >> 8)
        self.base[self.count + 2] = UInt8(truncatingIfNeeded: rgb >> 16)
        self.count += 3
    }

    /// A count field (§7.4.7): `value` as 255s and a last byte below 255.
    @inline(__always)
    func appendCount(_ value: Int) {
        self.appendRunLength(value + 1)
    }

    /// A run-length field (§7.4.4): `length − 1` as 255s and a last byte below 255.
    @inline(__always)
    func appendRunLength(_ length: Int) {
        var rest = length - 1
        while rest >= 255 {
            self.base[self.count] = 255
            self.count += 1
            rest -= 255
        }
        self.base[self.count] = UInt8(truncatingIfNeeded: rest)
        self.count += 1
    }
}
