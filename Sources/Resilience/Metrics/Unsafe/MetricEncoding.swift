/// Encodes collected metric points as `ExportMetricsServiceRequest`s: the bytes that go on the
/// wire and into the spill store.
///
/// ```
/// ExportMetricsServiceRequest { ResourceMetrics resource_metrics = 1 {
///   Resource resource = 1; ScopeMetrics scope_metrics = 2 { InstrumentationScope scope = 1;
///   Metric metrics = 2 { name = 1; description = 2; unit = 3;
///     Gauge gauge = 5 | Sum sum = 7 | Histogram histogram = 9
///     | ExponentialHistogram exponential_histogram = 10 } } } }
/// ```
enum MetricEncoding {
    /// The instrumentation scope of swift-metrics' instruments, which have none of their own.
    static let scopeName = "swift-metrics"

    /// `families` as requests of at most about `maxPoints` data points each (a metric is never
    /// cut: a request holds whole metrics, so one metric with more points makes a larger one).
    static func requests(
        _ families: [[MetricRegistry.Collected]], resource: [UInt8], temporality: PipelineConfiguration.Metrics.Temporality,
        now: UInt64, maxPoints: Int = 4096
    ) -> [(body: [UInt8], points: Int)] {
        var requests: [(body: [UInt8], points: Int)] = []
        var index = 0
        while index < families.count {
            let buffer = ScratchBuffer(capacity: 64 << 10)
            let resourceMetrics = buffer.openLength(field: 1)
            resource.withUnsafeBytes { buffer.putBytesField(1, $0.baseAddress!, $0.count) }
            let scopeMetrics = buffer.openLength(field: 2)
            let scope = buffer.openLength(field: 1)
            buffer.putStringField(1, scopeName)
            buffer.closeLength(scope)
            var points = 0
            while index < families.count && (points == 0 || points + families[index].count <= maxPoints) {
                encode(families[index], into: buffer, temporality: temporality, now: now)
                points += families[index].count
                index += 1
            }
            buffer.closeLength(scopeMetrics)
            buffer.closeLength(resourceMetrics)
            requests.append((Array(UnsafeRawBufferPointer(start: buffer.base, count: buffer.count)), points))
        }
        return requests
    }

    /// One `Metric` with every point of one metric.
    private static func encode(
        _ points: [MetricRegistry.Collected], into buffer: ScratchBuffer, temporality: PipelineConfiguration.Metrics.Temporality,
        now: UInt64
    ) {
        let first = points[0].series
        let metric = buffer.openLength(field: 2)
        buffer.putStringField(1, first.name)
        if !first.description.isEmpty { buffer.putStringField(2, first.description) }
        if !first.unit.isEmpty { buffer.putStringField(3, first.unit) }
        let aggregation: UInt64 = temporality == .cumulative ? 2 : 1
        switch first.instrument {
        case .gauge:
            let gauge = buffer.openLength(field: 5)
            for point in points { numberPoint(point, into: buffer, now: now, withStart: false) }
            buffer.closeLength(gauge)
        case .counter, .floatingPointCounter:
            let sum = buffer.openLength(field: 7)
            for point in points { numberPoint(point, into: buffer, now: now, withStart: true) }
            buffer.reserve(16)  // the primitives below write into reserved room only
            buffer.putTag(2, .varint)
            buffer.putVarint(aggregation)
            buffer.putTag(3, .varint)
            buffer.putVarint(1)  // is_monotonic
            buffer.closeLength(sum)
        case .histogram:
            let histogram = buffer.openLength(field: 9)
            for point in points { histogramPoint(point, into: buffer, now: now) }
            buffer.reserve(16)
            buffer.putTag(2, .varint)
            buffer.putVarint(aggregation)
            buffer.closeLength(histogram)
        case .exponentialHistogram:
            let histogram = buffer.openLength(field: 10)
            for point in points { exponentialPoint(point, into: buffer, now: now) }
            buffer.reserve(16)
            buffer.putTag(2, .varint)
            buffer.putVarint(aggregation)
            buffer.closeLength(histogram)
        }
        buffer.closeLength(metric)
    }

    /// `NumberDataPoint { start_time_unix_nano = 2; time_unix_nano = 3; as_double = 4; as_int = 6; attributes = 7 }`.
    private static func numberPoint(_ point: MetricRegistry.Collected, into buffer: ScratchBuffer, now: UInt64, withStart: Bool) {
        let data = buffer.openLength(field: 1)
        putAttributes(of: point.series, into: buffer)
        buffer.reserve(40)
        if withStart {
            buffer.putTag(2, .fixed64)
            buffer.putFixed64(point.startTime)
        }
        buffer.putTag(3, .fixed64)
        buffer.putFixed64(now)
        if point.isInteger, let integer = Int64(exactly: point.value) {
            buffer.putTag(6, .fixed64)
            buffer.putFixed64(UInt64(bitPattern: integer))
        } else {
            buffer.putTag(4, .fixed64)
            buffer.putFixed64(point.value.bitPattern)
        }
        buffer.closeLength(data)
    }

    /// `HistogramDataPoint { start_time_unix_nano = 2; time_unix_nano = 3; count = 4; sum = 5;
    /// bucket_counts = 6; explicit_bounds = 7; attributes = 9; min = 11; max = 12 }`.
    private static func histogramPoint(_ point: MetricRegistry.Collected, into buffer: ScratchBuffer, now: UInt64) {
        let data = buffer.openLength(field: 1)
        buffer.reserve(64 + (point.bucketCounts.count + point.series.boundaries.count) * 8)
        buffer.putTag(2, .fixed64)
        buffer.putFixed64(point.startTime)
        buffer.putTag(3, .fixed64)
        buffer.putFixed64(now)
        buffer.putTag(4, .fixed64)
        buffer.putFixed64(point.bucketCounts.reduce(0, &+))
        buffer.putTag(5, .fixed64)
        buffer.putFixed64(point.value.bitPattern)
        buffer.putTag(6, .lengthDelimited)
        buffer.putVarint(UInt64(point.bucketCounts.count * 8))
        for count in point.bucketCounts { buffer.putFixed64(count) }
        let bounds = point.series.boundaries
        buffer.putTag(7, .lengthDelimited)
        buffer.putVarint(UInt64(bounds.count * 8))
        for bound in bounds { buffer.putFixed64(bound.bitPattern) }
        putAttributes(of: point.series, into: buffer)
        putExtremes(of: point, fields: (11, 12), into: buffer)
        buffer.closeLength(data)
    }

    /// `ExponentialHistogramDataPoint { attributes = 1; start_time_unix_nano = 2; time_unix_nano = 3;
    /// count = 4; sum = 5; scale = 6 (sint32); zero_count = 7; positive = 8; negative = 9; min = 12;
    /// max = 13 }`, each `Buckets { offset = 1 (sint32); bucket_counts = 2 (packed uint64) }`.
    private static func exponentialPoint(_ point: MetricRegistry.Collected, into buffer: ScratchBuffer, now: UInt64) {
        guard let histogram = point.exponential else { return }
        let data = buffer.openLength(field: 1)
        putAttributes(of: point.series, into: buffer)
        buffer.reserve(64)
        buffer.putTag(2, .fixed64)
        buffer.putFixed64(point.startTime)
        buffer.putTag(3, .fixed64)
        buffer.putFixed64(now)
        buffer.putTag(4, .fixed64)
        buffer.putFixed64(histogram.count)
        buffer.putTag(5, .fixed64)
        buffer.putFixed64(point.value.bitPattern)
        buffer.putTag(6, .varint)
        buffer.putVarint(zigZag32(histogram.scale))
        buffer.putTag(7, .fixed64)
        buffer.putFixed64(histogram.zeroCount)
        for (field, side) in [(8, histogram.positive), (9, histogram.negative)] where !side.counts.isEmpty {
            let buckets = buffer.openLength(field: field)
            buffer.reserve(32 + side.counts.count * 10)
            buffer.putTag(1, .varint)
            buffer.putVarint(zigZag32(side.offset))
            var packed = 0
            for count in side.counts { packed += varintSize(count) }
            buffer.putTag(2, .lengthDelimited)
            buffer.putVarint(UInt64(packed))
            for count in side.counts { buffer.putVarint(count) }
            buffer.closeLength(buckets)
        }
        putExtremes(of: point, fields: (12, 13), into: buffer)
        buffer.closeLength(data)
    }

    /// A histogram point's minimum and maximum (fields `fields.min` and `fields.max`), when it has them.
    private static func putExtremes(of point: MetricRegistry.Collected, fields: (min: Int, max: Int), into buffer: ScratchBuffer) {
        buffer.reserve(24)
        if point.minimum.isFinite {
            buffer.putTag(fields.min, .fixed64)
            buffer.putFixed64(point.minimum.bitPattern)
        }
        if point.maximum.isFinite {
            buffer.putTag(fields.max, .fixed64)
            buffer.putFixed64(point.maximum.bitPattern)
        }
    }

    /// The `attributes` field of a series' data points, encoded once when the series is made
    /// (field 7 of a number point, 9 of a histogram point, 1 of an exponential histogram point).
    static func encodedAttributes(_ attributes: [(key: String, value: AttributeValue)], instrument: MetricSeries.Instrument) -> [UInt8] {
        let field =
            switch instrument {
            case .counter, .floatingPointCounter, .gauge: 7
            case .histogram: 9
            case .exponentialHistogram: 1
            }
        let buffer = ScratchBuffer(capacity: 256)
        for attribute in attributes { buffer.putAttribute(field: field, key: attribute.key, value: attribute.value, valueLimit: .max) }
        return Array(UnsafeRawBufferPointer(start: buffer.base, count: buffer.count))
    }

    /// Copies a series' encoded attributes (``encodedAttributes(_:instrument:)``) into `buffer`.
    private static func putAttributes(of series: MetricSeries, into buffer: ScratchBuffer) {
        let bytes = series.encodedAttributes
        guard !bytes.isEmpty else { return }
        buffer.reserve(bytes.count)
        bytes.withUnsafeBytes { buffer.putRaw($0.baseAddress!, $0.count) }
    }
}
