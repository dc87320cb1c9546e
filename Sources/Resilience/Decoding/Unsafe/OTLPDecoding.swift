/// A span read back from an `ExportTraceServiceRequest`: what the receiver, the tests and the
/// file tools see. Decoded by Spillway's own reader; conformance tests check the same bytes with
/// the official `opentelemetry-proto` package as well.
///
/// Fields carry the OTLP names in Swift case; ids are zero and strings empty when absent.
public struct DecodedSpan: Sendable, Hashable {
    public var resource: [String: AttributeValue] = [:]
    public var scopeName = ""
    public var scopeVersion = ""
    public var traceID = TraceID(high: 0, low: 0)
    public var spanID = SpanID(0)
    public var parentSpanID = SpanID(0)
    public var traceState = ""
    public var name = ""
    public var kind: UInt8 = 0
    public var startTimeUnixNano: UInt64 = 0
    public var endTimeUnixNano: UInt64 = 0
    public var attributes: [String: AttributeValue] = [:]
    public var droppedAttributesCount: UInt32 = 0
    public var events: [Event] = []
    public var droppedEventsCount: UInt32 = 0
    public var links: [Link] = []
    public var droppedLinksCount: UInt32 = 0
    public var statusCode: UInt8 = 0
    public var statusMessage = ""
    public var flags: UInt32 = 0

    public struct Event: Sendable, Hashable {
        public var timeUnixNano: UInt64 = 0
        public var name = ""
        public var attributes: [String: AttributeValue] = [:]
        public var droppedAttributesCount: UInt32 = 0
    }

    public struct Link: Sendable, Hashable {
        public var traceID = TraceID(high: 0, low: 0)
        public var spanID = SpanID(0)
        public var traceState = ""
        public var attributes: [String: AttributeValue] = [:]
        public var droppedAttributesCount: UInt32 = 0
        public var flags: UInt32 = 0
    }
}

/// A log record read back from an `ExportLogsServiceRequest`. Fields carry the OTLP names in
/// Swift case; ids are zero and strings empty when absent, `body` is `nil` when absent.
public struct DecodedLogRecord: Sendable, Hashable {
    public var resource: [String: AttributeValue] = [:]
    public var scopeName = ""
    public var scopeVersion = ""
    public var timeUnixNano: UInt64 = 0
    public var observedTimeUnixNano: UInt64 = 0
    public var severityNumber: UInt8 = 0
    public var severityText = ""
    public var body: AttributeValue?
    public var attributes: [String: AttributeValue] = [:]
    public var droppedAttributesCount: UInt32 = 0
    public var flags: UInt32 = 0
    public var traceID = TraceID(high: 0, low: 0)
    public var spanID = SpanID(0)
    public var eventName = ""
}

/// Reads OTLP export requests (protobuf) into ``DecodedSpan`` and ``DecodedLogRecord``.
/// Malformed input throws ``ProtoDecodingError``; nothing traps.
package enum OTLPDecoding {
    /// Decodes a serialized `ExportTraceServiceRequest`.
    public static func spans(from body: [UInt8]) throws(ProtoDecodingError) -> [DecodedSpan] {
        try withBytes(body) { bytes throws(ProtoDecodingError) in
            var spans: [DecodedSpan] = []
            try walk(ProtoReader(bytes)) { (resource, scope, record) throws(ProtoDecodingError) in
                var span = try decodeSpan(record)
                span.resource = resource
                (span.scopeName, span.scopeVersion) = scope
                spans.append(span)
            }
            return spans
        }
    }

    /// Decodes a serialized `ExportLogsServiceRequest`.
    public static func logRecords(from body: [UInt8]) throws(ProtoDecodingError) -> [DecodedLogRecord] {
        try withBytes(body) { bytes throws(ProtoDecodingError) in
            var records: [DecodedLogRecord] = []
            try walk(ProtoReader(bytes)) { (resource, scope, record) throws(ProtoDecodingError) in
                var log = try decodeLog(record)
                log.resource = resource
                (log.scopeName, log.scopeVersion) = scope
                records.append(log)
            }
            return records
        }
    }

    /// Request { Resource… = 1 { resource = 1; Scope… = 2 { scope = 1; records = 2 } } }: the same
    /// shape for traces and logs.
    static func walk(
        _ request: ProtoReader,
        _ visit: (_ resource: [String: AttributeValue], _ scope: (String, String), _ record: ProtoReader) throws(ProtoDecodingError) -> Void
    ) throws(ProtoDecodingError) {
        var request = request
        while let field = try request.nextField() {
            guard field.number == 1, field.wire == 2 else {
                try request.skip(field.wire)
                continue
            }
            var resourceBlock = try request.message()
            var resource: [String: AttributeValue] = [:]
            var scopeBlocks: [ProtoReader] = []
            while let f = try resourceBlock.nextField() {
                switch (f.number, f.wire) {
                case (1, 2):
                    var r = try resourceBlock.message()
                    while let rf = try r.nextField() {
                        if rf.number == 1 && rf.wire == 2 {
                            let (k, v) = try keyValue(r.message())
                            resource[k] = v
                        } else {
                            try r.skip(rf.wire)
                        }
                    }
                case (2, 2): scopeBlocks.append(try resourceBlock.message())
                default: try resourceBlock.skip(f.wire)
                }
            }
            for var block in scopeBlocks {
                var scope = ("", "")
                var records: [ProtoReader] = []
                while let f = try block.nextField() {
                    switch (f.number, f.wire) {
                    case (1, 2):
                        var s = try block.message()
                        while let sf = try s.nextField() {
                            switch (sf.number, sf.wire) {
                            case (1, 2): scope.0 = try s.string()
                            case (2, 2): scope.1 = try s.string()
                            default: try s.skip(sf.wire)
                            }
                        }
                    case (2, 2): records.append(try block.message())
                    default: try block.skip(f.wire)
                    }
                }
                for record in records { try visit(resource, scope, record) }
            }
        }
    }

    static func decodeSpan(_ reader: ProtoReader) throws(ProtoDecodingError) -> DecodedSpan {
        var r = reader
        var span = DecodedSpan()
        while let f = try r.nextField() {
            switch (f.number, f.wire) {
            case (1, 2):
                let id = try r.id128()
                span.traceID = TraceID(high: id.0, low: id.1)
            case (2, 2): span.spanID = SpanID(try r.id64())
            case (3, 2): span.traceState = try r.string()
            case (4, 2): span.parentSpanID = SpanID(try r.id64())
            case (5, 2): span.name = try r.string()
            case (6, 0): span.kind = UInt8(truncatingIfNeeded: try r.varint())
            case (7, 1): span.startTimeUnixNano = try r.fixed64()
            case (8, 1): span.endTimeUnixNano = try r.fixed64()
            case (9, 2):
                let (k, v) = try keyValue(r.message())
                span.attributes[k] = v
            case (10, 0): span.droppedAttributesCount = UInt32(truncatingIfNeeded: try r.varint())
            case (11, 2):
                var e = try r.message()
                var event = DecodedSpan.Event()
                while let ef = try e.nextField() {
                    switch (ef.number, ef.wire) {
                    case (1, 1): event.timeUnixNano = try e.fixed64()
                    case (2, 2): event.name = try e.string()
                    case (3, 2):
                        let (k, v) = try keyValue(e.message())
                        event.attributes[k] = v
                    case (4, 0): event.droppedAttributesCount = UInt32(truncatingIfNeeded: try e.varint())
                    default: try e.skip(ef.wire)
                    }
                }
                span.events.append(event)
            case (12, 0): span.droppedEventsCount = UInt32(truncatingIfNeeded: try r.varint())
            case (13, 2):
                var l = try r.message()
                var link = DecodedSpan.Link()
                while let lf = try l.nextField() {
                    switch (lf.number, lf.wire) {
                    case (1, 2):
                        let id = try l.id128()
                        link.traceID = TraceID(high: id.0, low: id.1)
                    case (2, 2): link.spanID = SpanID(try l.id64())
                    case (3, 2): link.traceState = try l.string()
                    case (4, 2):
                        let (k, v) = try keyValue(l.message())
                        link.attributes[k] = v
                    case (5, 0): link.droppedAttributesCount = UInt32(truncatingIfNeeded: try l.varint())
                    case (6, 5): link.flags = try l.fixed32()
                    default: try l.skip(lf.wire)
                    }
                }
                span.links.append(link)
            case (14, 0): span.droppedLinksCount = UInt32(truncatingIfNeeded: try r.varint())
            case (15, 2):
                var s = try r.message()
                while let sf = try s.nextField() {
                    switch (sf.number, sf.wire) {
                    case (2, 2): span.statusMessage = try s.string()
                    case (3, 0): span.statusCode = UInt8(truncatingIfNeeded: try s.varint())
                    default: try s.skip(sf.wire)
                    }
                }
            case (16, 5): span.flags = try r.fixed32()
            default: try r.skip(f.wire)
            }
        }
        return span
    }

    static func decodeLog(_ reader: ProtoReader) throws(ProtoDecodingError) -> DecodedLogRecord {
        var r = reader
        var log = DecodedLogRecord()
        while let f = try r.nextField() {
            switch (f.number, f.wire) {
            case (1, 1): log.timeUnixNano = try r.fixed64()
            case (11, 1): log.observedTimeUnixNano = try r.fixed64()
            case (2, 0): log.severityNumber = UInt8(truncatingIfNeeded: try r.varint())
            case (3, 2): log.severityText = try r.string()
            case (5, 2): log.body = try anyValue(r.message())
            case (6, 2):
                let (k, v) = try keyValue(r.message())
                log.attributes[k] = v
            case (7, 0): log.droppedAttributesCount = UInt32(truncatingIfNeeded: try r.varint())
            case (8, 5): log.flags = try r.fixed32()
            case (9, 2):
                let id = try r.id128()
                log.traceID = TraceID(high: id.0, low: id.1)
            case (10, 2): log.spanID = SpanID(try r.id64())
            case (12, 2): log.eventName = try r.string()
            default: try r.skip(f.wire)
            }
        }
        return log
    }

    static func keyValue(_ reader: ProtoReader) throws(ProtoDecodingError) -> (String, AttributeValue) {
        var r = reader
        var key = ""
        var value = AttributeValue.string("")
        while let f = try r.nextField() {
            switch (f.number, f.wire) {
            case (1, 2): key = try r.string()
            case (2, 2): value = try anyValue(r.message())
            default: try r.skip(f.wire)
            }
        }
        return (key, value)
    }

    static func anyValue(_ reader: ProtoReader, depth: Int = 0) throws(ProtoDecodingError) -> AttributeValue {
        guard depth < 64 else { throw ProtoDecodingError("values nested deeper than 64") }
        var r = reader
        var value = AttributeValue.string("")
        while let f = try r.nextField() {
            switch (f.number, f.wire) {
            case (1, 2): value = .string(try r.string())
            case (2, 0): value = .bool(try r.varint() != 0)
            case (3, 0): value = .int(Int64(bitPattern: try r.varint()))
            case (4, 1): value = .double(Double(bitPattern: try r.fixed64()))
            case (7, 2): value = .bytes(try r.byteArray())
            case (5, 2):
                var a = try r.message()
                var values: [AttributeValue] = []
                while let af = try a.nextField() {
                    if af.number == 1 && af.wire == 2 {
                        values.append(try anyValue(a.message(), depth: depth + 1))
                    } else {
                        try a.skip(af.wire)
                    }
                }
                value = .array(values)
            case (6, 2):
                var m = try r.message()
                var pairs: [(key: String, value: AttributeValue)] = []
                while let mf = try m.nextField() {
                    if mf.number == 1 && mf.wire == 2 {
                        let (k, v) = try keyValue(m.message())
                        pairs.append((k, v))
                    } else {
                        try m.skip(mf.wire)
                    }
                }
                value = .map(pairs)
            default: try r.skip(f.wire)
            }
        }
        return value
    }
}

/// `withUnsafeBytes` that keeps the error type.
func withBytes<R>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(ProtoDecodingError) -> R) throws(ProtoDecodingError) -> R {
    do {
        return try bytes.withUnsafeBytes { try body($0) }
    } catch let error as ProtoDecodingError {
        throw error
    } catch {
        preconditionFailure("unreachable: \(error)")
    }
}
