import Synchronization

/// The metric series of one pipeline, and their collection into OTLP requests.
///
/// Handing out a series takes a lock (once per swift-metrics handler, not per measurement);
/// recording into it takes none (``MetricSeries``). Asking again for the same name, instrument
/// and attributes returns the same series, so two handlers for one series add up.
///
/// Each metric (a name and an instrument) holds at most ``cardinalityLimit`` series, as the
/// OpenTelemetry SDK's cardinality limit: past `limit - 1` attribute sets, new ones share one
/// series with the single attribute `otel.metric.overflow=true`, and each such attribute set
/// is counted (``overflowedAttributeSets``).
///
/// Thread-safety: safe from any thread; ``collect(temporality:now:)`` is called by one reader at a time.
package final class MetricRegistry: Sendable {
    package let cardinalityLimit: Int
    private struct Key: Hashable {
        var name: String
        var instrument: MetricSeries.Instrument
    }
    private struct Family {
        var series: [[AttributeKey]: MetricSeries] = [:]
        var overflow: MetricSeries?
        var order: [MetricSeries] = []
    }
    private struct AttributeKey: Hashable {
        var key: String
        var value: AttributeValue
    }
    private struct State {
        var families: [Key: Family] = [:]
        var order: [Key] = []
        var overflowed = 0
    }
    private let state = Mutex(State())
    /// What the last delta collection saw of each series (by identity), read and written by
    /// the one reader only.
    private let previous = Mutex<[ObjectIdentifier: Previous]>([:])
    private let lastCollection: Atomic<UInt64>

    struct Previous {
        var totals: [UInt64]
        var sum: Double
    }

    /// - Parameter cardinalityLimit: The most series per metric, the overflow series included (≥ 2).
    package init(cardinalityLimit: Int = 2000) {
        self.cardinalityLimit = max(2, cardinalityLimit)
        lastCollection = Atomic(nowUnixNano())
    }

    /// Attribute sets that went to a metric's overflow series because it had reached the limit.
    package var overflowedAttributeSets: Int { state.withLock { $0.overflowed } }

    /// The series in use (overflow series included).
    package var seriesCount: Int {
        state.withLock { $0.families.values.reduce(0) { $0 + $1.series.count + ($1.overflow == nil ? 0 : 1) } }
    }

    /// The series of `name` with `attributes` (in any order; a key given twice keeps its last value).
    package func series(
        name: String, instrument: MetricSeries.Instrument, unit: String = "", description: String = "",
        attributes: [(String, AttributeValue)]
    ) -> MetricSeries {
        var unique: [String: AttributeValue] = [:]
        for (key, value) in attributes { unique[key] = value }
        let sorted = unique.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
        let identity = sorted.map { AttributeKey(key: $0.key, value: $0.value) }
        let key = Key(name: name, instrument: instrument)
        return state.withLock { state in
            // Taken out and put back, so that the family's dictionary is not shared while it
            // changes: a copy would make each new series cost as much as the family's size.
            if state.families[key] == nil { state.order.append(key) }
            var family = state.families.removeValue(forKey: key) ?? Family()
            defer { state.families[key] = family }
            return make(in: &family, overflowed: &state.overflowed)
        }
        func make(in family: inout Family, overflowed: inout Int) -> MetricSeries {
            if let existing = family.series[identity] { return existing }
            if family.series.count >= cardinalityLimit - 1 {
                overflowed += 1
                if let overflow = family.overflow { return overflow }
                let overflow = MetricSeries(
                    name: name, unit: unit, description: description, instrument: instrument,
                    attributes: [(key: "otel.metric.overflow", value: .bool(true))], isOverflow: true, startTime: nowUnixNano())
                family.overflow = overflow
                family.order.append(overflow)
                return overflow
            }
            let series = MetricSeries(
                name: name, unit: unit, description: description, instrument: instrument, attributes: sorted, isOverflow: false,
                startTime: nowUnixNano())
            family.series[identity] = series
            family.order.append(series)
            return series
        }
    }

    /// Stops keeping `series` (swift-metrics' `destroy…`): its last values go out with the next
    /// collection, then it is forgotten. Handlers still holding it record into nothing.
    package func remove(_ series: MetricSeries) {
        series.removed.store(true, ordering: .relaxed)
    }

    /// One metric's points at a collection.
    struct Collected {
        var series: MetricSeries
        var startTime: UInt64
        var value: Double = 0
        var isInteger = false
        var bucketCounts: [UInt64] = []
        var minimum = 0.0
        var maximum = 0.0
        /// An exponential histogram's buckets (its ``bucketCounts`` are then the raw slots, and
        /// the zero count last).
        var exponential: Exponential?
    }

    /// An exponential histogram point's scale and buckets (a class: most points are not
    /// exponential histograms, and ``Collected`` stays small for them).
    final class Exponential {
        let scale: Int
        let zeroCount: UInt64
        let positive: ExponentialBuckets.Side
        let negative: ExponentialBuckets.Side
        var count: UInt64 { zeroCount + positive.counts.reduce(0, &+) + negative.counts.reduce(0, &+) }

        init(scale: Int, zeroCount: UInt64, positive: ExponentialBuckets.Side, negative: ExponentialBuckets.Side) {
            self.scale = scale
            self.zeroCount = zeroCount
            self.positive = positive
            self.negative = negative
        }
    }

    /// A histogram's counts now: the explicit buckets, or the exponential slots and the zero count.
    private static func histogramCounts(_ series: MetricSeries) -> [UInt64] {
        if let exponential = series.exponential { return exponential.totals() + [series.slots.total(0)] }
        return (0...series.boundaries.count).map { series.slots.total($0) }
    }

    /// Folds an exponential histogram's raw counts into its point's buckets.
    private static func finish(_ point: inout Collected) {
        guard let buckets = point.series.exponential, let zero = point.bucketCounts.last else { return }
        let folded = buckets.fold(Array(point.bucketCounts.dropLast()))
        point.exponential = Exponential(scale: folded.scale, zeroCount: zero, positive: folded.positive, negative: folded.negative)
    }

    /// Every series' point now, in the order the metrics and series were made. Cumulative: the
    /// totals since each series began. Delta: what changed since the last collection (series
    /// without a change are left out). Gauges: the last value, when one was set. Removed series
    /// are reported this last time and forgotten.
    func collect(temporality: PipelineConfiguration.Metrics.Temporality, now: UInt64) -> [[Collected]] {
        let families: [[MetricSeries]] = state.withLock { state in
            var result: [[MetricSeries]] = []
            for key in state.order {
                guard var family = state.families[key] else { continue }
                result.append(family.order)
                if family.order.contains(where: { $0.removed.load(ordering: .relaxed) }) {
                    family.order.removeAll { $0.removed.load(ordering: .relaxed) }
                    family.series = family.series.filter { !$0.value.removed.load(ordering: .relaxed) }
                    if family.overflow?.removed.load(ordering: .relaxed) == true { family.overflow = nil }
                    state.families[key] = family
                }
            }
            return result
        }
        let deltaStart = lastCollection.exchange(now, ordering: .relaxed)
        let removed = families.joined().filter { $0.removed.load(ordering: .relaxed) }.map { ObjectIdentifier($0) }
        return previous.withLock { previous in
            defer { for id in removed { previous[id] = nil } }
            var result: [[Collected]] = []
            for family in families {
                var points: [Collected] = []
                for series in family {
                    let id = ObjectIdentifier(series)
                    switch series.instrument {
                    case .gauge:
                        guard series.slots.load(1) != 0 else { continue }
                        points.append(
                            Collected(series: series, startTime: series.startTime, value: Double(bitPattern: series.slots.load(0))))
                    case .counter, .floatingPointCounter:
                        let integer = series.instrument == .counter
                        let total = integer ? series.slots.total(0) : series.slots.totalDouble(0).bitPattern
                        var point = Collected(series: series, startTime: series.startTime, isInteger: integer)
                        if temporality == .delta {
                            var before = previous[id]?.totals.first ?? (integer ? 0 : 0.0.bitPattern)
                            // Less than before: the series was reset (swift-metrics' `reset()`).
                            if integer ? total < before : Double(bitPattern: total) < Double(bitPattern: before) {
                                before = integer ? 0 : 0.0.bitPattern
                            }
                            previous[id] = Previous(totals: [total], sum: 0)
                            guard total != before else { continue }
                            point.startTime = max(deltaStart, series.startTime)
                            point.value = integer ? Double(total &- before) : Double(bitPattern: total) - Double(bitPattern: before)
                        } else {
                            point.value = integer ? Double(total) : Double(bitPattern: total)
                        }
                        points.append(point)
                    case .histogram, .exponentialHistogram:
                        let buckets = Self.histogramCounts(series)
                        let sum = series.slots.totalDouble(series.sumSlot)
                        let reset: (Double, Double)? = temporality == .delta ? (Double.infinity, -Double.infinity) : nil
                        var point = Collected(series: series, startTime: series.startTime)
                        point.minimum = series.slots.extreme(series.minimumSlot, largest: false, reset: reset?.0)
                        point.maximum = series.slots.extreme(series.maximumSlot, largest: true, reset: reset?.1)
                        if temporality == .delta {
                            var before = previous[id] ?? Previous(totals: buckets.map { _ in 0 }, sum: 0)
                            if zip(buckets, before.totals).contains(where: { $0 < $1 }) {
                                before = Previous(totals: buckets.map { _ in 0 }, sum: 0)  // reset
                            }
                            previous[id] = Previous(totals: buckets, sum: sum)
                            point.bucketCounts = zip(buckets, before.totals).map { $0 &- $1 }
                            guard point.bucketCounts.contains(where: { $0 > 0 }) else { continue }
                            point.value = sum - before.sum
                            point.startTime = max(deltaStart, series.startTime)
                        } else {
                            point.bucketCounts = buckets
                            point.value = sum
                            guard buckets.contains(where: { $0 > 0 }) else { continue }
                        }
                        Self.finish(&point)
                        points.append(point)
                    }
                }
                if !points.isEmpty { result.append(points) }
            }
            return result
        }
    }

    /// Every series' cumulative point now, for a scrape (the status endpoint's `/metrics`):
    /// changes nothing — not the delta books, not the removed series, not the minimum and maximum.
    func snapshot() -> [[Collected]] {
        let families: [[MetricSeries]] = state.withLock { state in state.order.compactMap { state.families[$0]?.order } }
        return families.compactMap { family -> [Collected]? in
            let points = family.compactMap { series -> Collected? in
                var point = Collected(series: series, startTime: series.startTime)
                switch series.instrument {
                case .gauge:
                    guard series.slots.load(1) != 0 else { return nil }
                    point.value = Double(bitPattern: series.slots.load(0))
                case .counter:
                    point.value = Double(series.slots.total(0))
                    point.isInteger = true
                case .floatingPointCounter:
                    point.value = series.slots.totalDouble(0)
                case .histogram, .exponentialHistogram:
                    point.bucketCounts = Self.histogramCounts(series)
                    point.value = series.slots.totalDouble(series.sumSlot)
                    point.minimum = series.slots.extreme(series.minimumSlot, largest: false, reset: nil)
                    point.maximum = series.slots.extreme(series.maximumSlot, largest: true, reset: nil)
                    Self.finish(&point)
                }
                return point
            }
            return points.isEmpty ? nil : points
        }
    }
}
