extension OTLPJSONLines {
    /// One line per metric data point: `attributes`, `batch`, `bucket_counts` and
    /// `explicit_bounds` (histograms), `count` (histograms), `scale`, `zero_count`, `positive` and
    /// `negative` (`{"offset":…,"bucket_counts":[…]}`, exponential histograms), `kind`, `monotonic` (sums), `name`,
    /// `resource`, `scope`, `signal`, `start_time_unix_nano`, `temporality` (1 delta,
    /// 2 cumulative, 0 gauge), `time_unix_nano`, `unit`, `value` (a number's value, a histogram's sum).
    static func appendMetrics(_ body: [UInt8], batch: UInt64, to out: inout JSONBuffer) throws(ProtoDecodingError) -> Int {
        let points = try OTLPDecoding.metricPoints(from: body)
        for point in points {
            out.raw("{\"attributes\":")
            out.attributes(point.attributes)
            out.raw(",\"batch\":")
            out.number(batch)
            if point.kind == .histogram {
                out.raw(",\"bucket_counts\":[")
                for (i, n) in point.bucketCounts.enumerated() {
                    if i > 0 { out.raw(",") }
                    out.number(n)
                }
                out.raw("],\"count\":")
                out.number(point.count)
                out.raw(",\"explicit_bounds\":[")
                for (i, bound) in point.explicitBounds.enumerated() {
                    if i > 0 { out.raw(",") }
                    out.double(bound)
                }
                out.raw("]")
            }
            if point.kind == .exponentialHistogram {
                out.raw(",\"count\":")
                out.number(point.count)
                for (negative, side) in [(true, point.negative), (false, point.positive)] {
                    negative ? out.raw(",\"negative\":{\"bucket_counts\":[") : out.raw(",\"positive\":{\"bucket_counts\":[")
                    for (i, n) in side.counts.enumerated() {
                        if i > 0 { out.raw(",") }
                        out.number(n)
                    }
                    out.raw("],\"offset\":")
                    out.signed(Int64(side.offset))
                    out.raw("}")
                }
                out.raw(",\"scale\":")
                out.signed(Int64(point.scale))
                out.raw(",\"zero_count\":")
                out.number(point.zeroCount)
            }
            out.raw(",\"kind\":")
            out.text(point.kind.rawValue)
            if point.kind == .sum { point.isMonotonic ? out.raw(",\"monotonic\":true") : out.raw(",\"monotonic\":false") }
            out.raw(",\"name\":")
            out.text(point.name)
            out.raw(",\"resource\":")
            out.attributes(point.resource)
            out.raw(",\"scope\":")
            out.text(point.scopeName)
            out.raw(",\"signal\":\"metrics\",\"start_time_unix_nano\":")
            out.number(point.startTimeUnixNano)
            out.raw(",\"temporality\":")
            out.number(UInt64(point.temporality))
            out.raw(",\"time_unix_nano\":")
            out.number(point.timeUnixNano)
            out.raw(",\"unit\":")
            out.text(point.unit)
            out.raw(",\"value\":")
            if point.isInteger, let n = Int64(exactly: point.value) { out.signed(n) } else { out.double(point.value) }
            out.raw("}\n")
        }
        return points.count
    }
}

extension JSONBuffer {
    mutating func text(_ string: String) {
        var copy = string
        copy.withUTF8 { appendString(UnsafeRawBufferPointer($0)) }
    }

    /// A JSON number; NaN and the infinities, which JSON lacks, as strings.
    mutating func double(_ value: Double) {
        if value.isFinite {
            bytes.append(contentsOf: Array(value.description.utf8))
        } else {
            text(value.description)
        }
    }

    /// Attributes as one object, keys sorted.
    mutating func attributes(_ attributes: [String: AttributeValue]) {
        raw("{")
        for (i, key) in attributes.keys.sorted().enumerated() {
            if i > 0 { raw(",") }
            text(key)
            raw(":")
            value(attributes[key]!)
        }
        raw("}")
    }

    private mutating func value(_ value: AttributeValue) {
        switch value {
        case .string(let s): text(s)
        case .bool(let b): b ? raw("true") : raw("false")
        case .int(let n): signed(n)
        case .double(let d): double(d)
        case .bytes(let b): text(b.map { String($0, radix: 16) }.joined())
        case .array(let values):
            raw("[")
            for (i, v) in values.enumerated() {
                if i > 0 { raw(",") }
                self.value(v)
            }
            raw("]")
        case .map(let pairs):
            raw("{")
            for (i, pair) in pairs.enumerated() {
                if i > 0 { raw(",") }
                text(pair.key)
                raw(":")
                self.value(pair.value)
            }
            raw("}")
        }
    }
}
