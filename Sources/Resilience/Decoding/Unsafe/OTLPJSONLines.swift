/// Transcodes serialized OTLP requests straight to JSON lines — one object per span or log
/// record, keys sorted — without building decoded records: what `spillway decode` prints, at
/// the speed an incident needs (hundreds of thousands of records a second on one core).
///
/// A span: `attributes`, `batch`, `end_time_unix_nano`, `events` (count), `kind`, `links`
/// (count), `name`, `parent_span_id`, `resource`, `scope`, `signal`, `span_id`,
/// `start_time_unix_nano`, `status_code`, `trace_id`. A log record: `attributes`, `batch`,
/// `body`, `event_name`, `resource`, `scope`, `severity`, `signal`, `span_id`,
/// `time_unix_nano`, `trace_id`. Ids are hex, bytes base64, strings with invalid UTF-8 repaired.
/// A metric data point: see ``appendMetrics(_:batch:to:)``.
package enum OTLPJSONLines {
    /// Appends one line per record of `body` to `out`; returns how many.
    /// - Throws: ``ProtoDecodingError`` for bytes that are not a request; `out` may then hold
    ///   the lines of the records before the error.
    package static func append(
        _ body: [UInt8], signal: TelemetrySignal, batch: UInt64, to out: inout JSONBuffer
    ) throws(ProtoDecodingError) -> Int {
        if signal == .metrics { return try appendMetrics(body, batch: batch, to: &out) }
        return try withBytes(body) { bytes throws(ProtoDecodingError) -> Int in
            var request = ProtoReader(bytes)
            var count = 0
            var prefix = JSONBuffer()
            while let field = try request.nextField() {
                guard field.number == 1, field.wire == 2 else {
                    try request.skip(field.wire)
                    continue
                }
                var block = try request.message()
                var resource = JSONBuffer()
                resource.raw("{")
                var scopeBlocks: [ProtoReader] = []
                while let f = try block.nextField() {
                    switch (f.number, f.wire) {
                    case (1, 2):
                        var r = try block.message()
                        var first = true
                        while let rf = try r.nextField() {
                            if rf.number == 1 && rf.wire == 2 {
                                try resource.keyValue(r.message(), first: &first)
                            } else {
                                try r.skip(rf.wire)
                            }
                        }
                    case (2, 2): scopeBlocks.append(try block.message())
                    default: try block.skip(f.wire)
                    }
                }
                resource.raw("}")
                for var scopeBlock in scopeBlocks {
                    var scopeName: ProtoReader?
                    var records: [ProtoReader] = []
                    while let f = try scopeBlock.nextField() {
                        switch (f.number, f.wire) {
                        case (1, 2):
                            var s = try scopeBlock.message()
                            while let sf = try s.nextField() {
                                if sf.number == 1 && sf.wire == 2 {
                                    scopeName = s
                                    _ = try s.message()
                                } else {
                                    try s.skip(sf.wire)
                                }
                            }
                        case (2, 2): records.append(try scopeBlock.message())
                        default: try scopeBlock.skip(f.wire)
                        }
                    }
                    // What every record of this scope shares: batch, resource, scope.
                    prefix.bytes.removeAll(keepingCapacity: true)
                    prefix.raw(",\"batch\":")
                    prefix.number(batch)
                    var tail = JSONBuffer()
                    tail.raw(",\"resource\":")
                    tail.bytes += resource.bytes
                    tail.raw(",\"scope\":")
                    if var name = scopeName { try tail.string(&name) } else { tail.raw("\"\"") }
                    for record in records {
                        if signal == .traces { try span(record, prefix, tail, &out) } else { try log(record, prefix, tail, &out) }
                        count += 1
                    }
                }
            }
            return count
        }
    }

    private static func span(_ reader: ProtoReader, _ prefix: JSONBuffer, _ shared: JSONBuffer, _ out: inout JSONBuffer)
        throws(ProtoDecodingError)
    {
        var r = reader
        var traceID: ProtoReader?, spanID: ProtoReader?, parentID: ProtoReader?, name: ProtoReader?
        var kind: UInt64 = 0, start: UInt64 = 0, end: UInt64 = 0, events = 0, links = 0, status: UInt64 = 0
        var attributes: [ProtoReader] = []
        while let f = try r.nextField() {
            switch (f.number, f.wire) {
            case (1, 2):
                traceID = r
                _ = try r.message()
            case (2, 2):
                spanID = r
                _ = try r.message()
            case (4, 2):
                parentID = r
                _ = try r.message()
            case (5, 2):
                name = r
                _ = try r.message()
            case (6, 0): kind = try r.varint()
            case (7, 1): start = try r.fixed64()
            case (8, 1): end = try r.fixed64()
            case (9, 2): attributes.append(try r.message())
            case (11, 2):
                events += 1
                _ = try r.message()
            case (13, 2):
                links += 1
                _ = try r.message()
            case (15, 2):
                var s = try r.message()
                while let sf = try s.nextField() {
                    if sf.number == 3 && sf.wire == 0 { status = try s.varint() } else { try s.skip(sf.wire) }
                }
            default: try r.skip(f.wire)
            }
        }
        out.raw("{\"attributes\":{")
        var first = true
        for attribute in attributes { try out.keyValue(attribute, first: &first) }
        out.raw("}")
        out.bytes += prefix.bytes
        out.raw(",\"end_time_unix_nano\":")
        out.number(end)
        out.raw(",\"events\":")
        out.number(UInt64(events))
        out.raw(",\"kind\":")
        out.number(kind)
        out.raw(",\"links\":")
        out.number(UInt64(links))
        out.raw(",\"name\":")
        if var name { try out.string(&name) } else { out.raw("\"\"") }
        out.raw(",\"parent_span_id\":")
        try out.hex(&parentID, width: 8)
        out.bytes += shared.bytes
        out.raw(",\"signal\":\"traces\",\"span_id\":")
        try out.hex(&spanID, width: 8)
        out.raw(",\"start_time_unix_nano\":")
        out.number(start)
        out.raw(",\"status_code\":")
        out.number(status)
        out.raw(",\"trace_id\":")
        try out.hex(&traceID, width: 16)
        out.raw("}\n")
    }

    private static func log(_ reader: ProtoReader, _ prefix: JSONBuffer, _ shared: JSONBuffer, _ out: inout JSONBuffer)
        throws(ProtoDecodingError)
    {
        var r = reader
        var traceID: ProtoReader?, spanID: ProtoReader?, severity: ProtoReader?, eventName: ProtoReader?, body: ProtoReader?
        var time: UInt64 = 0
        var attributes: [ProtoReader] = []
        while let f = try r.nextField() {
            switch (f.number, f.wire) {
            case (1, 1): time = try r.fixed64()
            case (3, 2):
                severity = r
                _ = try r.message()
            case (5, 2): body = try r.message()
            case (6, 2): attributes.append(try r.message())
            case (9, 2):
                traceID = r
                _ = try r.message()
            case (10, 2):
                spanID = r
                _ = try r.message()
            case (12, 2):
                eventName = r
                _ = try r.message()
            default: try r.skip(f.wire)
            }
        }
        out.raw("{\"attributes\":{")
        var first = true
        for attribute in attributes { try out.keyValue(attribute, first: &first) }
        out.raw("}")
        out.bytes += prefix.bytes
        out.raw(",\"body\":")
        if let body { try out.anyValue(body, depth: 0) } else { out.raw("null") }
        out.raw(",\"event_name\":")
        if var eventName { try out.string(&eventName) } else { out.raw("\"\"") }
        out.bytes += shared.bytes
        out.raw(",\"severity\":")
        if var severity { try out.string(&severity) } else { out.raw("\"\"") }
        out.raw(",\"signal\":\"logs\",\"span_id\":")
        try out.hex(&spanID, width: 8)
        out.raw(",\"time_unix_nano\":")
        out.number(time)
        out.raw(",\"trace_id\":")
        try out.hex(&traceID, width: 16)
        out.raw("}\n")
    }
}

/// A growing byte buffer with the JSON writing `spillway decode` needs.
package struct JSONBuffer {
    package var bytes: [UInt8] = []

    package init() {}

    package mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    package mutating func number(_ n: UInt64) {
        if n < 10 {
            bytes.append(UInt8(n) + 0x30)
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var v = n
            var count = 0
            while v > 0 {
                digits[19 - count] = UInt8(v % 10) + 0x30
                v /= 10
                count += 1
            }
            bytes.append(contentsOf: digits[(20 - count)...])
        }
    }

    mutating func signed(_ n: Int64) {
        if n < 0 {
            bytes.append(0x2D)
            number(n.magnitude)
        } else {
            number(UInt64(n))
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// An id field as hex, or `width` zero bytes when absent.
    mutating func hex(_ field: inout ProtoReader?, width: Int) throws(ProtoDecodingError) {
        guard var reader = field else {
            bytes.append(0x22)
            bytes.append(contentsOf: repeatElement(0x30, count: width * 2))
            bytes.append(0x22)
            return
        }
        try reader.withBytesField { id in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: id.count * 2 + 2) { text in
                text[0] = 0x22
                for (i, byte) in id.enumerated() {
                    text[1 + 2 * i] = Self.hexDigits[Int(byte >> 4)]
                    text[2 + 2 * i] = Self.hexDigits[Int(byte & 15)]
                }
                text[id.count * 2 + 1] = 0x22
                bytes.append(contentsOf: text)
            }
        }
    }

    /// The length-delimited field at `reader` as a JSON string.
    mutating func string(_ reader: inout ProtoReader) throws(ProtoDecodingError) {
        try reader.withBytesField { utf8 in appendString(utf8) }
    }

    package mutating func appendString(_ utf8: UnsafeRawBufferPointer) {
        bytes.append(0x22)
        if utf8.allSatisfy({ $0 < 0x80 }) {
            escape(utf8)
        } else {
            // Invalid UTF-8 is repaired (U+FFFD), so the line stays valid JSON.
            var repaired = String(decoding: utf8, as: UTF8.self)
            repaired.withUTF8 { escape(UnsafeRawBufferPointer($0)) }
        }
        bytes.append(0x22)
    }

    /// Appends `utf8` with JSON escapes, copying the runs that need none in one piece.
    private mutating func escape(_ utf8: UnsafeRawBufferPointer) {
        var start = 0
        for i in 0..<utf8.count {
            let byte = utf8[i]
            guard byte < 0x20 || byte == 0x22 || byte == 0x5C else { continue }
            if i > start { bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: utf8[start..<i])) }
            switch byte {
            case 0x22: bytes.append(contentsOf: [0x5C, 0x22])
            case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: bytes.append(contentsOf: [0x5C, 0x72])
            case 0x09: bytes.append(contentsOf: [0x5C, 0x74])
            default: bytes.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, Self.hexDigits[Int(byte >> 4)], Self.hexDigits[Int(byte & 15)]])
            }
            start = i + 1
        }
        if start < utf8.count { bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: utf8[start...])) }
    }

    /// `"key":value` of a KeyValue message, after a comma unless `first`.
    mutating func keyValue(_ reader: ProtoReader, first: inout Bool) throws(ProtoDecodingError) {
        var r = reader
        var key: ProtoReader?
        var value: ProtoReader?
        while let f = try r.nextField() {
            switch (f.number, f.wire) {
            case (1, 2):
                key = r
                _ = try r.message()
            case (2, 2): value = try r.message()
            default: try r.skip(f.wire)
            }
        }
        if !first { bytes.append(0x2C) }
        first = false
        if var key { try string(&key) } else { raw("\"\"") }
        bytes.append(0x3A)
        if let value { try anyValue(value, depth: 0) } else { raw("null") }
    }

    /// An AnyValue message as JSON: string, bool, int, double, base64 bytes, array, object.
    mutating func anyValue(_ reader: ProtoReader, depth: Int) throws(ProtoDecodingError) {
        guard depth < 64 else { throw ProtoDecodingError("values nested deeper than 64") }
        var r = reader
        var written = false
        while let f = try r.nextField() {
            if written {
                try r.skip(f.wire)
                continue
            }
            written = true
            switch (f.number, f.wire) {
            case (1, 2): try string(&r)
            case (2, 0): if try r.varint() != 0 { raw("true") } else { raw("false") }
            case (3, 0): signed(Int64(bitPattern: try r.varint()))
            case (4, 1):
                let d = Double(bitPattern: try r.fixed64())
                if d.isFinite { bytes.append(contentsOf: Array("\(d)".utf8)) } else { bytes.append(contentsOf: Array("\"\(d)\"".utf8)) }
            case (7, 2): try r.withBytesField { base64($0) }
            case (5, 2):
                var a = try r.message()
                bytes.append(0x5B)
                var firstElement = true
                while let af = try a.nextField() {
                    guard af.number == 1 && af.wire == 2 else {
                        try a.skip(af.wire)
                        continue
                    }
                    if !firstElement { bytes.append(0x2C) }
                    firstElement = false
                    try anyValue(a.message(), depth: depth + 1)
                }
                bytes.append(0x5D)
            case (6, 2):
                var m = try r.message()
                bytes.append(0x7B)
                var firstPair = true
                while let mf = try m.nextField() {
                    if mf.number == 1 && mf.wire == 2 { try keyValue(m.message(), first: &firstPair) } else { try m.skip(mf.wire) }
                }
                bytes.append(0x7D)
            default:
                try r.skip(f.wire)
                written = false
            }
        }
        if !written { raw("null") }
    }

    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private mutating func base64(_ input: UnsafeRawBufferPointer) {
        bytes.append(0x22)
        var i = 0
        while i + 2 < input.count {
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            for shift: UInt32 in [18, 12, 6, 0] { bytes.append(Self.alphabet[Int((n >> shift) & 63)]) }
            i += 3
        }
        let rest = input.count - i
        if rest > 0 {
            let n = UInt32(input[i]) << 16 | (rest == 2 ? UInt32(input[i + 1]) << 8 : 0)
            bytes.append(Self.alphabet[Int((n >> 18) & 63)])
            bytes.append(Self.alphabet[Int((n >> 12) & 63)])
            bytes.append(rest == 2 ? Self.alphabet[Int((n >> 6) & 63)] : 0x3D)
            bytes.append(0x3D)
        }
        bytes.append(0x22)
    }
}
