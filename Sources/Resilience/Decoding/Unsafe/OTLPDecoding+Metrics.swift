/// One data point read back from an `ExportMetricsServiceRequest`, with its metric's name,
/// unit, kind and temporality: what the receiver, the tests and the file tools see.
///
/// Conformance tests read the same bytes with the official `opentelemetry-proto` package too.
package struct DecodedMetricPoint: Sendable, Hashable {
    /// The metric's kind, by the field of `Metric` that holds its data.
    package enum Kind: String, Sendable, Hashable {
        case gauge, sum, histogram, exponentialHistogram, summary
    }

    package var resource: [String: AttributeValue] = [:]
    package var scopeName = ""
    package var name = ""
    package var description = ""
    package var unit = ""
    package var kind = Kind.gauge
    /// 1 delta, 2 cumulative, 0 for gauges.
    package var temporality = 0
    package var isMonotonic = false
    package var attributes: [String: AttributeValue] = [:]
    package var startTimeUnixNano: UInt64 = 0
    package var timeUnixNano: UInt64 = 0
    /// A number point's value (`as_int` or `as_double`), or a histogram's sum.
    package var value: Double = 0
    package var isInteger = false
    /// A histogram's count, bucket counts and explicit bounds.
    package var count: UInt64 = 0
    package var bucketCounts: [UInt64] = []
    package var explicitBounds: [Double] = []
    package var minimum: Double?
    package var maximum: Double?
    /// An exponential histogram's scale, zero count and buckets (its count, sum, minimum and
    /// maximum are the fields above).
    package var scale = 0
    package var zeroCount: UInt64 = 0
    package var positive = Buckets()
    package var negative = Buckets()

    /// One sign's buckets of an exponential histogram point: counts from index `offset` on.
    package struct Buckets: Sendable, Hashable {
        package var offset = 0
        package var counts: [UInt64] = []
    }
}

extension OTLPDecoding {
    /// Decodes a serialized `ExportMetricsServiceRequest` into its data points, in order.
    package static func metricPoints(from body: [UInt8]) throws(ProtoDecodingError) -> [DecodedMetricPoint] {
        try withBytes(body) { bytes throws(ProtoDecodingError) in
            var points: [DecodedMetricPoint] = []
            try walk(ProtoReader(bytes)) { (resource, scope, metric) throws(ProtoDecodingError) in
                var template = DecodedMetricPoint()
                template.resource = resource
                template.scopeName = scope.0
                try visitMetric(metric, template: &template) { point throws(ProtoDecodingError) in points.append(point) }
            }
            return points
        }
    }

    /// The data points of a serialized `ExportMetricsServiceRequest`, counted without decoding them.
    static func countMetricPoints(_ bytes: UnsafeRawBufferPointer) throws(ProtoDecodingError) -> Int {
        var n = 0
        try walk(ProtoReader(bytes)) { (_, _, metric) throws(ProtoDecodingError) in
            var r = metric
            while let f = try r.nextField() {
                guard Self.metricDataFields.contains(f.number), f.wire == 2 else {
                    try r.skip(f.wire)
                    continue
                }
                var data = try r.message()
                while let df = try data.nextField() {
                    if df.number == 1 && df.wire == 2 { n += 1 }
                    try data.skip(df.wire)
                }
            }
        }
        return n
    }

    /// `Metric`'s fields that hold data: gauge 5, sum 7, histogram 9, exponential histogram 10, summary 11.
    static let metricDataFields: Set<Int> = [5, 7, 9, 10, 11]

    private static func visitMetric(
        _ metric: ProtoReader, template: inout DecodedMetricPoint, _ emit: (DecodedMetricPoint) throws(ProtoDecodingError) -> Void
    ) throws(ProtoDecodingError) {
        var r = metric
        var data: [(Int, ProtoReader)] = []
        while let f = try r.nextField() {
            switch (f.number, f.wire) {
            case (1, 2): template.name = try r.string()
            case (2, 2): template.description = try r.string()
            case (3, 2): template.unit = try r.string()
            case (let n, 2) where metricDataFields.contains(n): data.append((n, try r.message()))
            default: try r.skip(f.wire)
            }
        }
        for (field, reader) in data {
            var point = template
            point.kind =
                switch field {
                case 5: .gauge
                case 7: .sum
                case 9: .histogram
                case 10: .exponentialHistogram
                default: .summary
                }
            var d = reader
            var rawPoints: [ProtoReader] = []
            while let f = try d.nextField() {
                switch (f.number, f.wire) {
                case (1, 2): rawPoints.append(try d.message())
                case (2, 0): point.temporality = Int(try d.varint())
                case (3, 0): point.isMonotonic = try d.varint() != 0
                default: try d.skip(f.wire)
                }
            }
            for raw in rawPoints { try emit(try decodePoint(raw, into: point)) }
        }
    }

    private static func decodePoint(_ reader: ProtoReader, into template: DecodedMetricPoint) throws(ProtoDecodingError)
        -> DecodedMetricPoint
    {
        var point = template
        var r = reader
        if point.kind == .exponentialHistogram { return try decodeExponentialPoint(r, into: point) }
        let histogram = point.kind == .histogram
        let attributesField = histogram ? 9 : 7
        while let f = try r.nextField() {
            switch (f.number, f.wire) {
            case (attributesField, 2):
                let (k, v) = try keyValue(r.message())
                point.attributes[k] = v
            case (2, 1): point.startTimeUnixNano = try r.fixed64()
            case (3, 1): point.timeUnixNano = try r.fixed64()
            case (4, 1) where !histogram: point.value = Double(bitPattern: try r.fixed64())
            case (6, 1) where !histogram:
                point.value = Double(Int64(bitPattern: try r.fixed64()))
                point.isInteger = true
            case (4, 1) where histogram: point.count = try r.fixed64()
            case (5, 1) where histogram: point.value = Double(bitPattern: try r.fixed64())
            case (6, 2) where histogram:
                var packed = try r.message()
                while !packed.isAtEnd { point.bucketCounts.append(try packed.fixed64()) }
            case (7, 2) where histogram:
                var packed = try r.message()
                while !packed.isAtEnd { point.explicitBounds.append(Double(bitPattern: try packed.fixed64())) }
            case (11, 1) where histogram: point.minimum = Double(bitPattern: try r.fixed64())
            case (12, 1) where histogram: point.maximum = Double(bitPattern: try r.fixed64())
            default: try r.skip(f.wire)
            }
        }
        return point
    }

    /// `ExponentialHistogramDataPoint { attributes = 1; start_time_unix_nano = 2; time_unix_nano = 3;
    /// count = 4; sum = 5; scale = 6; zero_count = 7; positive = 8; negative = 9; min = 12; max = 13 }`.
    private static func decodeExponentialPoint(_ reader: ProtoReader, into template: DecodedMetricPoint) throws(ProtoDecodingError)
        -> DecodedMetricPoint
    {
        var point = template
        var r = reader
        while let f = try r.nextField() {
            switch (f.number, f.wire) {
            case (1, 2):
                let (k, v) = try keyValue(r.message())
                point.attributes[k] = v
            case (2, 1): point.startTimeUnixNano = try r.fixed64()
            case (3, 1): point.timeUnixNano = try r.fixed64()
            case (4, 1): point.count = try r.fixed64()
            case (5, 1): point.value = Double(bitPattern: try r.fixed64())
            case (6, 0): point.scale = unZigZag32(try r.varint())
            case (7, 1): point.zeroCount = try r.fixed64()
            case (8, 2): point.positive = try buckets(r.message())
            case (9, 2): point.negative = try buckets(r.message())
            case (12, 1): point.minimum = Double(bitPattern: try r.fixed64())
            case (13, 1): point.maximum = Double(bitPattern: try r.fixed64())
            default: try r.skip(f.wire)
            }
        }
        return point
    }

    /// `Buckets { sint32 offset = 1; repeated uint64 bucket_counts = 2 }`, packed or not.
    private static func buckets(_ reader: ProtoReader) throws(ProtoDecodingError) -> DecodedMetricPoint.Buckets {
        var result = DecodedMetricPoint.Buckets()
        var r = reader
        while let f = try r.nextField() {
            switch (f.number, f.wire) {
            case (1, 0): result.offset = unZigZag32(try r.varint())
            case (2, 2):
                var packed = try r.message()
                while !packed.isAtEnd { result.counts.append(try packed.varint()) }
            case (2, 0): result.counts.append(try r.varint())
            default: try r.skip(f.wire)
            }
        }
        return result
    }
}
