extension OTLPDecoding {
    /// Walks a serialized request without building records: calls `visit` once per span or log
    /// record with its span id (0 for logs without one) and its `spillway.load.seq` attribute,
    /// if it has one, and once per metric data point with neither. For receivers that count
    /// millions of records.
    package static func scan(
        _ body: [UInt8], signal: TelemetrySignal, visit: (_ spanID: UInt64, _ loadSequence: Int64?) -> Void
    ) throws(ProtoDecodingError) {
        if signal == .metrics {
            for _ in 0..<(try count(body, signal: .metrics)) { visit(0, nil) }
            return
        }
        let key = Array("spillway.load.seq".utf8)
        try withBytes(body) { bytes throws(ProtoDecodingError) in
            try withBytes(key) { key throws(ProtoDecodingError) in
                let attributeField = signal == .traces ? SpanField.attributes : LogField.attributes
                let idField = signal == .traces ? SpanField.spanID : LogField.spanID
                try walk(ProtoReader(bytes)) { (_, _, record) throws(ProtoDecodingError) in
                    var r = record
                    var id: UInt64 = 0
                    var sequence: Int64?
                    while let f = try r.nextField() {
                        if f.number == idField && f.wire == 2 {
                            id = try r.id64()
                        } else if f.number == attributeField && f.wire == 2 && sequence == nil {
                            var kv = try r.message()
                            var matches = false
                            while let kf = try kv.nextField() {
                                if kf.number == 1 && kf.wire == 2 {
                                    matches = try kv.bytesEqual(key)
                                } else if kf.number == 2 && kf.wire == 2 && matches {
                                    var any = try kv.message()
                                    while let af = try any.nextField() {
                                        if af.number == 3 && af.wire == 0 {
                                            sequence = Int64(bitPattern: try any.varint())
                                        } else {
                                            try any.skip(af.wire)
                                        }
                                    }
                                } else {
                                    try kv.skip(kf.wire)
                                }
                            }
                        } else {
                            try r.skip(f.wire)
                        }
                    }
                    visit(id, sequence)
                }
            }
        }
    }
}

extension OTLPDecoding {
    /// The spans, log records or metric data points in a serialized request, counted without decoding them.
    package static func count(_ body: [UInt8], signal: TelemetrySignal) throws(ProtoDecodingError) -> Int {
        try withBytes(body) { bytes throws(ProtoDecodingError) in
            if signal == .metrics { return try countMetricPoints(bytes) }
            var n = 0
            try walk(ProtoReader(bytes)) { (_, _, _) throws(ProtoDecodingError) in n += 1 }
            return n
        }
    }
}
