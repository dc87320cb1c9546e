import Synchronization

/// One time series of a metric: its name, instrument, attributes and the atomic slots its
/// measurements go into. What a swift-metrics handler holds (`SpillwayMetricsFactory`).
///
/// Recording never locks and never allocates: a relaxed atomic add, or a compare-and-swap on a
/// `Double`'s bits, into the stripe of the CPU the caller runs on (``MetricSlots``).
///
/// Thread-safety: safe from any thread.
package final class MetricSeries: Sendable {
    /// The instrument a series belongs to, which decides its OTLP data type.
    package enum Instrument: Sendable, Hashable {
        /// A monotonic integer sum (swift-metrics `Counter`).
        case counter
        /// A monotonic floating-point sum (`FloatingPointCounter`).
        case floatingPointCounter
        /// The last value set, raised or lowered (`Meter`, and `Recorder(aggregate: false)`).
        case gauge
        /// An explicit-bucket histogram with these upper bounds (`Recorder`, `Timer` in seconds).
        case histogram(boundaries: [Double])
        /// A base-2 exponential histogram of at most `maxSize` buckets per sign (``ExponentialBuckets``).
        case exponentialHistogram(maxSize: Int)
    }

    package let name: String
    package let unit: String
    package let description: String
    package let instrument: Instrument
    /// Whether ``instrument`` is a gauge: the handlers branch on it per measurement, and matching
    /// the enum there would copy (retain and release) a histogram's boundaries each time.
    package let isGauge: Bool
    /// Sorted by key.
    package let attributes: [(key: String, value: AttributeValue)]
    /// ``attributes`` as the `attributes` field of the series' OTLP data points, encoded once.
    let encodedAttributes: [UInt8]
    /// The series that takes the measurements of attribute sets past the cardinality limit.
    package let isOverflow: Bool
    /// Unix nanoseconds when the series began (the start time of its cumulative points); a
    /// ``reset()`` begins it again.
    var startTime: UInt64 { started.load(ordering: .relaxed) }
    private let started: Atomic<UInt64>
    let slots: MetricSlots
    let boundaries: [Double]
    /// An exponential histogram's buckets (its zero count, sum, minimum and maximum are in ``slots``).
    let exponential: ExponentialBuckets?
    /// Set by ``MetricRegistry/remove(_:)``: reported once more, then forgotten.
    let removed = Atomic<Bool>(false)

    // Slot layout. Counter: 0 the count. Floating-point counter: 0 the sum's bits. Gauge
    // (stripe 0 only): 0 the value's bits, 1 whether a value was set. Histogram: the buckets,
    // then the sum's bits, the minimum's and the maximum's. Exponential histogram: the zero count,
    // then the same three.
    var sumSlot: Int { boundaries.count + 1 }
    var minimumSlot: Int { boundaries.count + 2 }
    var maximumSlot: Int { boundaries.count + 3 }

    init(
        name: String, unit: String, description: String, instrument: Instrument, attributes: [(key: String, value: AttributeValue)],
        isOverflow: Bool, startTime: UInt64
    ) {
        self.name = name
        self.unit = unit
        self.description = description
        self.instrument = instrument
        self.isGauge = instrument == .gauge
        self.attributes = attributes
        self.encodedAttributes = MetricEncoding.encodedAttributes(attributes, instrument: instrument)
        self.isOverflow = isOverflow
        self.started = Atomic(startTime)
        if case .exponentialHistogram(let maxSize) = instrument {
            exponential = ExponentialBuckets(maxSize: maxSize)
        } else {
            exponential = nil
        }
        switch instrument {
        case .counter, .floatingPointCounter:
            boundaries = []
            slots = MetricSlots(width: 1)
        case .gauge:
            boundaries = []
            slots = MetricSlots(width: 2)
        case .histogram(let bounds):
            boundaries = bounds
            slots = MetricSlots(width: bounds.count + 4, initial: Self.initialHistogramSlot(buckets: bounds.count + 1))
        case .exponentialHistogram:
            boundaries = []
            slots = MetricSlots(width: 4, initial: Self.initialHistogramSlot(buckets: 1))
        }
    }

    /// A histogram's slots start at 0, the minimum at +∞ and the maximum at −∞.
    private static func initialHistogramSlot(buckets: Int) -> (Int) -> UInt64 {
        { slot in
            switch slot - buckets {
            case 1: Double.infinity.bitPattern
            case 2: (-Double.infinity).bitPattern
            default: 0
            }
        }
    }

    /// Begins a counter or histogram again from nothing, with a new start time (swift-metrics'
    /// `reset()`); measurements recorded while it resets may be lost.
    package func reset() {
        switch instrument {
        case .counter, .floatingPointCounter: slots.reset { _ in 0 }
        case .gauge: slots.reset { _ in 0 }
        case .histogram: slots.reset(Self.initialHistogramSlot(buckets: boundaries.count + 1))
        case .exponentialHistogram:
            slots.reset(Self.initialHistogramSlot(buckets: 1))
            exponential?.reset()
        }
        started.store(nowUnixNano(), ordering: .relaxed)
    }

    /// Adds `amount` to a counter; a negative amount is ignored (a counter only grows).
    @inline(__always)
    package func increment(by amount: Int64) {
        guard amount > 0 else { return }
        slots.add(0, UInt64(amount))
    }

    /// Adds `amount` to a floating-point counter; a negative or non-finite amount is ignored.
    @inline(__always)
    package func increment(by amount: Double) {
        guard amount > 0, amount.isFinite else { return }
        slots.add(0, double: amount)
    }

    /// Sets a gauge.
    @inline(__always)
    package func set(_ value: Double) {
        slots.store(0, value.bitPattern)
        slots.store(1, 1)
    }

    /// Raises (or, negative, lowers) a gauge; a gauge never set starts at 0.
    @inline(__always)
    package func add(_ amount: Double) {
        slots.addUnstriped(0, double: amount)
        slots.store(1, 1)
    }

    /// Records one value into a histogram; NaN is ignored, and so are infinities in an
    /// exponential histogram (which has no bucket for them).
    @inline(__always)
    package func record(_ value: Double) {
        guard !value.isNaN else { return }
        if let exponential {
            guard value.isFinite else { return }
            if value != 0 { exponential.record(value) }
            slots.record(value, bucket: value == 0 ? 0 : -1, sum: sumSlot, minimum: minimumSlot, maximum: maximumSlot)
            return
        }
        var bucket = 0
        // Bucket i holds (boundaries[i-1], boundaries[i]]; the last one everything above.
        while bucket < boundaries.count && value > boundaries[bucket] { bucket += 1 }
        slots.record(value, bucket: bucket, sum: sumSlot, minimum: minimumSlot, maximum: maximumSlot)
    }
}
