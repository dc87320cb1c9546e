internal import CRingBuffer
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The 64-bit atomic slots behind one metric series, striped per CPU: each stripe is a copy of
/// the series' slots on cache lines of its own, and a thread adds to the stripe of the CPU it
/// runs on (``crb_current_cpu()``, one load from the kernel's rseq area, modulo the stripe
/// count), so two threads recording into the same series at the same moment — on two CPUs — do
/// not contend for one cache line. (Striping by thread, as before, put two threads on one stripe
/// whenever their numbers agreed modulo the count: half of all pairs with 2 stripes.) A thread
/// moved to another CPU between the read and the add still adds atomically: only the spread
/// suffers. Collection sums the stripes.
///
/// Recording is one relaxed atomic add (counts) or a compare-and-swap loop on a `Double`'s bits
/// (sums, minimum, maximum), which in practice succeeds at once: only threads sharing a stripe
/// race. Nothing locks or allocates. Readers see each slot's own value atomically; a collection
/// running beside recordings may see one recording's count without its sum: the next collection
/// sees both.
///
/// Thread-safety: safe from any thread. The memory lives as long as the object.
final class MetricSlots: @unchecked Sendable {
    /// Slots per stripe, a multiple of 8 (one cache line holds 8).
    let stride: Int
    /// Stripes, a power of two.
    let stripes: Int
    private let base: UnsafeMutablePointer<Atomic<UInt64>>

    /// The stripes of every series: the processors online, rounded up to a power of two, 2 to 8.
    static let stripeCount: Int = {
        let online = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        var n = 2
        while n < min(online, 8) { n *= 2 }
        return n
    }()

    /// `width` slots per stripe, each starting at `initial(slot)`; ``stripeCount`` stripes
    /// unless `stripes` says otherwise (a power of two; 1 for slots that are not striped).
    init(width: Int, stripes: Int = MetricSlots.stripeCount, initial: (Int) -> UInt64 = { _ in 0 }) {
        stride = (width + 7) / 8 * 8
        self.stripes = stripes
        let count = stride * stripes
        base = UnsafeMutableRawPointer.allocate(byteCount: count * 8, alignment: 64).bindMemory(to: Atomic<UInt64>.self, capacity: count)
        for stripe in 0..<stripes {
            for slot in 0..<stride { (base + stripe * stride + slot).initialize(to: Atomic(slot < width ? initial(slot) : 0)) }
        }
    }

    deinit {
        base.deinitialize(count: stride * stripes)
        UnsafeMutableRawPointer(base).deallocate()
    }

    /// The first slot of the stripe of the CPU the caller runs on.
    @inline(__always)
    private var mine: UnsafeMutablePointer<Atomic<UInt64>> {
        base + (Int(crb_current_cpu()) & (stripes - 1)) * stride
    }

    /// Adds `n` to `slot` of the caller's stripe.
    @inline(__always)
    func add(_ slot: Int, _ n: UInt64) {
        mine[slot].wrappingAdd(n, ordering: .relaxed)
    }

    /// Adds `n` to `slot` (holding a `Double`'s bits) of the caller's stripe.
    @inline(__always)
    func add(_ slot: Int, double n: Double) {
        Self.add(n, to: mine + slot)
    }

    /// Adds `n` to the `Double` whose bits `cell` holds: a compare-and-swap loop, which succeeds at
    /// once unless another thread writes the same cell.
    @inline(__always)
    private static func add(_ n: Double, to cell: UnsafeMutablePointer<Atomic<UInt64>>) {
        var old = cell.pointee.load(ordering: .relaxed)
        while true {
            let (exchanged, seen) = cell.pointee.weakCompareExchange(
                expected: old, desired: (Double(bitPattern: old) + n).bitPattern, ordering: .relaxed)
            if exchanged { return }
            old = seen
        }
    }

    /// Adds 1 to `bucket` and `value` to `sum`, and lowers `minimum` / raises `maximum` to `value`,
    /// in the caller's stripe: one histogram recording. A negative `bucket` counts in none.
    @inline(__always)
    func record(_ value: Double, bucket: Int, sum: Int, minimum: Int, maximum: Int) {
        let stripe = mine
        if bucket >= 0 { stripe[bucket].wrappingAdd(1, ordering: .relaxed) }
        Self.add(value, to: stripe + sum)
        let minCell = stripe + minimum
        var old = minCell.pointee.load(ordering: .relaxed)
        while value < Double(bitPattern: old) {
            let (exchanged, seen) = minCell.pointee.weakCompareExchange(expected: old, desired: value.bitPattern, ordering: .relaxed)
            if exchanged { break }
            old = seen
        }
        let maxCell = stripe + maximum
        old = maxCell.pointee.load(ordering: .relaxed)
        while value > Double(bitPattern: old) {
            let (exchanged, seen) = maxCell.pointee.weakCompareExchange(expected: old, desired: value.bitPattern, ordering: .relaxed)
            if exchanged { break }
            old = seen
        }
    }

    /// Sets every slot of every stripe back to `initial(slot)`.
    func reset(_ initial: (Int) -> UInt64) {
        for stripe in 0..<stripes {
            for slot in 0..<stride { base[stripe * stride + slot].store(initial(slot), ordering: .relaxed) }
        }
    }

    /// `slot` of one stripe.
    func value(_ slot: Int, stripe: Int) -> UInt64 {
        base[stripe * stride + slot].load(ordering: .relaxed)
    }

    /// `slot` summed over the stripes.
    func total(_ slot: Int) -> UInt64 {
        var n: UInt64 = 0
        for stripe in 0..<stripes { n &+= base[stripe * stride + slot].load(ordering: .relaxed) }
        return n
    }

    /// `slot` (a `Double`'s bits) summed over the stripes.
    func totalDouble(_ slot: Int) -> Double {
        var n = 0.0
        for stripe in 0..<stripes { n += Double(bitPattern: base[stripe * stride + slot].load(ordering: .relaxed)) }
        return n
    }

    /// The smallest (`largest: false`) or largest `Double` in `slot` over the stripes; with
    /// `reset`, each stripe's slot is set back to `resetTo` as it is read (delta temporality).
    func extreme(_ slot: Int, largest: Bool, reset resetTo: Double?) -> Double {
        var result = largest ? -Double.infinity : Double.infinity
        for stripe in 0..<stripes {
            let cell = base + stripe * stride + slot
            let bits = resetTo.map { cell.pointee.exchange($0.bitPattern, ordering: .relaxed) } ?? cell.pointee.load(ordering: .relaxed)
            let value = Double(bitPattern: bits)
            result = largest ? max(result, value) : min(result, value)
        }
        return result
    }

    /// Stores `bits` in `slot` of stripe 0: for values whose last write wins (gauges), which are not striped.
    @inline(__always)
    func store(_ slot: Int, _ bits: UInt64) {
        base[slot].store(bits, ordering: .relaxed)
    }

    /// `slot` of stripe 0 (see ``store(_:_:)``).
    @inline(__always)
    func load(_ slot: Int) -> UInt64 {
        base[slot].load(ordering: .relaxed)
    }

    /// `slot` of stripe 0, acquiring: pairs with the releasing ``compareExchange(_:expected:desired:)``.
    func loadAcquiring(_ slot: Int) -> UInt64 {
        base[slot].load(ordering: .acquiring)
    }

    /// Sets `slot` of stripe 0 to `desired` if it holds `expected` (releasing: what was written
    /// before is seen by a thread that loads `desired` acquiring); whether it did, and what it held.
    func compareExchange(_ slot: Int, expected: UInt64, desired: UInt64) -> (exchanged: Bool, original: UInt64) {
        base[slot].compareExchange(expected: expected, desired: desired, ordering: .acquiringAndReleasing)
    }

    /// Adds `n` to `slot` of stripe 0: a count that is not striped.
    @inline(__always)
    func addUnstriped(_ slot: Int, _ n: UInt64) {
        base[slot].wrappingAdd(n, ordering: .relaxed)
    }

    /// Adds `n` to `slot` (a `Double`'s bits) of stripe 0: a gauge's increment or decrement.
    @inline(__always)
    func addUnstriped(_ slot: Int, double n: Double) {
        Self.add(n, to: base + slot)
    }
}
