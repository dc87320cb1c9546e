import Synchronization

/// The buckets of a base-2 exponential histogram (OTLP `ExponentialHistogram`), recorded without a
/// lock and without allocating, and folded at collection to the finest scale that fits in
/// ``maxSize`` buckets per sign.
///
/// A series' scale cannot change under recording threads that hold no lock, so recording is at
/// one fixed scale, ``recordingScale`` (3: 8 buckets per power of two, each ≈ 9 % wide, the
/// resolution of Prometheus' default native-histogram schema), over a window of
/// ``windowOctaves`` powers of two per sign, placed around the first value of that sign
/// (±24 powers of two: a nanosecond to four hours in seconds). A value outside its window goes
/// to a coarse bucket at scale −4 (one per 16 powers of two), which covers every finite `Double`.
/// Collection is exact either way: it merges buckets, which is how the specification's
/// downscaling works, into scale 3 or coarser when the values span more than `maxSize` buckets,
/// and into scale −4 or coarser when any value fell outside its window. So a series reports at
/// most scale 3 (the specification's `MaxScale` is 20: a narrow series gets fewer, wider buckets
/// than the SDKs that rescale under a lock would give it).
///
/// The counts are not striped per thread (``MetricSlots`` with one stripe): 1,032 slots, 8 KiB a
/// series; two threads contend only when they record into the same bucket at once. Zero, the
/// sum, the minimum and the maximum are striped, in the series' own slots.
///
/// Thread-safety: safe from any thread.
final class ExponentialBuckets: Sendable {
    /// The scale values are recorded at.
    static let recordingScale = 3
    /// The scale of the buckets outside the window.
    static let coarseScale = -4
    /// The powers of two a sign's window covers, at the recording scale.
    static let windowOctaves = 48
    static let fineSlots = windowOctaves << recordingScale
    /// Scale −4 indices of finite `Double`s: −68 (2^−1074) … 63 (2^1023).
    static let coarseSlots = 132
    static let coarseFirst = -68
    static let signSlots = fineSlots + coarseSlots
    /// The specification's smallest scale.
    static let minimumScale = -10

    /// The most buckets of one sign a point holds (the specification's `MaxSize`, default 160).
    let maxSize: Int
    /// Positive values' slots, then negative values' (by magnitude): each the window, then the coarse buckets.
    let counts = MetricSlots(width: 2 * signSlots, stripes: 1)
    /// Each sign's window (slot 0 positive, 1 negative): the scale 0 index of its lowest power of
    /// two, as an `Int`'s bits, ``unplaced`` before the sign's first value.
    private let bases = MetricSlots(width: 2, stripes: 1, initial: { _ in unplaced })
    private static let unplaced = UInt64(bitPattern: Int64.min)

    init(maxSize: Int) {
        self.maxSize = max(2, maxSize)
    }

    /// Counts `value` (finite, not zero) in its bucket.
    @inline(__always)
    func record(_ value: Double) {
        let magnitude = value.magnitude
        let fine = Self.index(magnitude)
        let negative = value < 0
        let sign = negative ? 1 : 0
        var bits = bases.load(sign)
        if bits == Self.unplaced { bits = place(sign, around: fine >> Self.recordingScale) }
        let base = Int(Int64(bitPattern: bits))
        let slot = fine - (base << Self.recordingScale)
        let signFirst = negative ? Self.signSlots : 0
        if slot >= 0 && slot < Self.fineSlots {
            counts.addUnstriped(signFirst + slot, 1)
        } else {
            counts.addUnstriped(signFirst + Self.fineSlots + (fine >> (Self.recordingScale - Self.coarseScale)) - Self.coarseFirst, 1)
        }
    }

    /// Places `sign`'s window around `octave` unless another thread placed it first; its place.
    @inline(never)
    private func place(_ sign: Int, around octave: Int) -> UInt64 {
        let wanted = UInt64(bitPattern: Int64(octave - Self.windowOctaves / 2))
        let (exchanged, seen) = bases.compareExchange(sign, expected: Self.unplaced, desired: wanted)
        return exchanged ? wanted : seen
    }

    private func base(_ sign: Int) -> Int? {
        let bits = bases.loadAcquiring(sign)
        return bits == Self.unplaced ? nil : Int(Int64(bitPattern: bits))
    }

    /// The scale 3 index of a positive finite `magnitude`: bucket `i` holds (2^(i/8), 2^((i+1)/8)].
    @inline(__always)
    static func index(_ magnitude: Double) -> Int {
        let exponent = Int(magnitude.exponent)
        let m = magnitude.significand  // [1, 2), subnormals too
        if m == 1 { return exponent << 3 - 1 }  // a power of two closes the bucket below it
        // The bucket within the power of two: how many of 2^(k/8), k = 1…7, `m` is above.
        var sub = m > 1.0905077326652577 ? 1 : 0
        sub += m > 1.189207115002721 ? 1 : 0
        sub += m > 1.2968395546510096 ? 1 : 0
        sub += m > 1.4142135623730951 ? 1 : 0
        sub += m > 1.5422108254079407 ? 1 : 0
        sub += m > 1.681792830507429 ? 1 : 0
        sub += m > 1.8340080864093424 ? 1 : 0
        return exponent << 3 + sub
    }

    /// The counts now: each sign's window and coarse buckets, in the slots' order.
    ///
    /// A sign's window is placed before its first count, but a weakly ordered processor may show
    /// a collection running beside that first recording the count first: a window whose place
    /// is not seen yet reads as empty, and its counts come with the next collection.
    func totals() -> [UInt64] {
        var result = (0..<(2 * Self.signSlots)).map { counts.total($0) }
        for sign in 0..<2 where base(sign) == nil {
            for slot in 0..<Self.fineSlots { result[sign * Self.signSlots + slot] = 0 }
        }
        return result
    }

    /// Sets every count back to 0 (a `reset()`); the windows stay where they are.
    func reset() {
        counts.reset { _ in 0 }
    }

    /// One sign's buckets in a point: counts from index `offset` on, at the point's scale.
    struct Side: Hashable, Sendable {
        var offset = 0
        var counts: [UInt64] = []
    }

    /// `totals` (a ``totals()`` or the difference of two) as a point's scale and buckets.
    func fold(_ totals: [UInt64]) -> (scale: Int, positive: Side, negative: Side) {
        Self.fold(totals, positiveBase: base(0) ?? 0, negativeBase: base(1) ?? 0, maxSize: maxSize)
    }

    /// The pure part of ``fold(_:)``: the finest scale at most 3 (at most −4 when a coarse bucket
    /// counted anything) at which each sign's populated range fits in `maxSize` buckets.
    static func fold(_ totals: [UInt64], positiveBase: Int, negativeBase: Int, maxSize: Int) -> (
        scale: Int, positive: Side, negative: Side
    ) {
        let coarse = (0..<2).contains { sign in
            totals[(sign * signSlots + fineSlots)..<((sign + 1) * signSlots)].contains { $0 > 0 }
        }
        let start = coarse ? coarseScale : recordingScale
        // Each sign's (index at `start`, count), in increasing index order.
        func entries(_ sign: Int, base: Int) -> [(index: Int, count: UInt64)] {
            var result: [(index: Int, count: UInt64)] = []
            let first = sign * signSlots
            for slot in 0..<fineSlots where totals[first + slot] > 0 {
                result.append(((base << recordingScale + slot) >> (recordingScale - start), totals[first + slot]))
            }
            for slot in 0..<coarseSlots where totals[first + fineSlots + slot] > 0 {
                result.append((slot + coarseFirst, totals[first + fineSlots + slot]))
            }
            return result.sorted { $0.index < $1.index }
        }
        let sides = [entries(0, base: positiveBase), entries(1, base: negativeBase)]
        var scale = start
        while scale > minimumScale,
            sides.contains(where: { side in
                guard let low = side.first?.index, let high = side.last?.index else { return false }
                return (high >> (start - scale)) - (low >> (start - scale)) + 1 > maxSize
            })
        {
            scale -= 1
        }
        func side(_ entries: [(index: Int, count: UInt64)]) -> Side {
            guard let low = entries.first?.index else { return Side() }
            let shift = start - scale
            var result = Side(offset: low >> shift, counts: [])
            for (index, count) in entries {
                let position = (index >> shift) - result.offset
                while result.counts.count <= position { result.counts.append(0) }
                result.counts[position] &+= count
            }
            return result
        }
        return (scale, side(sides[0]), side(sides[1]))
    }
}
