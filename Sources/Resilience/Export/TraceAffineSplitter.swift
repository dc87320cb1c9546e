/// Splits each batch by trace over a `balance-by-trace` collector pool, so that every record of
/// a trace goes to the collector its trace id hashes to, and sends the parts concurrently.
///
/// The outermost stage of a pipeline whose exporter is a pool in
/// ``CollectorPoolConfiguration/Mode/balanceByTrace`` mode: each part is a batch of its own for
/// the stages inside (error handling, retry, the pool), so its outcome — exported, spilled, kept
/// or dropped — is booked and reported on its own, and a part that fails is never sent again with
/// the parts that were delivered. Records without a trace id (log records outside a trace) go to
/// one collector per batch. A body that cannot be read as the signal's request is sent whole.
///
/// Thread-safety: safe to call concurrently.
struct TraceAffineSplitter: TelemetryExporter {
    let next: any TelemetryExporter
    let pool: any CollectorRouting

    var name: String { next.name }

    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        let pool = self.pool
        let parts = TraceRouting.parts(of: batch) { pool.preferred(for: $0) }
        if parts.count == 1 { return try await next.export(parts[0]) }
        let next = self.next
        return try await withThrowingTaskGroup(of: ExportResponse.self) { group in
            for part in parts { group.addTask { try await next.export(part) } }
            var combined = ExportResponse()
            var firstError: (any Error)?
            while let result = await group.nextResult() {
                switch result {
                case .success(let response):
                    combined.rejectedRecords += response.rejectedRecords
                    if combined.errorMessage.isEmpty { combined.errorMessage = response.errorMessage }
                case .failure(let error):
                    firstError = firstError ?? error
                }
            }
            if let firstError { throw firstError }
            return combined
        }
    }

    func shutdown() async { await next.shutdown() }
}

/// Reads the trace ids of an OTLP request's records, and cuts a request into one request per
/// collector, copying the records' bytes (nothing is re-encoded).
///
/// A request is `resource_spans`/`resource_logs` (field 1), each holding its resource and
/// `scope_spans`/`scope_logs` (field 2), each holding its scope and the records (field 2). A part
/// keeps every resource's and scope's other fields, with only its own records.
package enum TraceRouting {
    /// The trace id's field in a span (1) or a log record (9).
    package static func traceField(_ signal: TelemetrySignal) -> Int { signal == .traces ? 1 : 9 }

    /// The routing key of a batch: its first record's trace id folded to 64 bits; the batch's
    /// sequence, mixed, when its first record has none (or the body cannot be read).
    package static func key(of batch: ExportBatch) -> UInt64 {
        // Metric data points carry no trace: a request goes whole, by its sequence.
        if batch.signal == .metrics { return collectorPoolMix(batch.sequence) }
        var found: UInt64?
        try? walk(batch.body, signal: batch.signal) { _, _, trace in
            found = trace ?? 0
            return false
        }
        if let found, found != 0 { return found }
        return collectorPoolMix(batch.sequence)
    }

    /// `batch` cut by trace into one batch per collector that `assign` gives its records' keys,
    /// each marked with its collector (``ExportBatch/collector``); `[batch]`, marked, when all go
    /// to one collector, and unmarked when its body cannot be read as a request of its signal (or
    /// holds another number of records than it says). Untraced records take the batch's sequence.
    package static func parts(of batch: ExportBatch, assign: ([UInt64]) -> [Int]) -> [ExportBatch] {
        if batch.signal == .metrics {
            var whole = batch
            whole.collector = assign([key(of: batch)]).first
            return [whole]
        }
        guard let parts = try? split(batch.body, signal: batch.signal, assign: assign, untraced: collectorPoolMix(batch.sequence)),
            !parts.isEmpty, parts.reduce(0, { $0 + $1.records }) == batch.recordCount
        else { return [batch] }
        return parts.map { part in
            var sub = batch
            sub.body = part.body
            sub.recordCount = part.records
            sub.collector = part.collector
            return sub
        }
    }

    /// One part of a split request.
    package struct Part: Sendable {
        package var collector: Int
        package var body: [UInt8]
        package var records: Int
    }

    /// `body` cut into one part per collector `assign` gives the records' keys (untraced records
    /// take `untraced`). - Throws: ``ProtoDecodingError`` when `body` is not a request.
    package static func split(
        _ body: [UInt8], signal: TelemetrySignal, assign: ([UInt64]) -> [Int], untraced: UInt64
    ) throws(ProtoDecodingError) -> [Part] {
        struct Scope {
            var other: [Range<Int>] = []
            var records: [Range<Int>] = []
        }
        struct Resource {
            var other: [Range<Int>] = []
            var scopes: [Scope] = []
        }
        var resources: [Resource] = []
        var keys: [UInt64] = []
        try walk(
            body, signal: signal,
            resource: { resources.append(Resource()) },
            resourceField: { field in
                let last = resources.count - 1
                resources[last].other.append(field)
            },
            scope: {
                let last = resources.count - 1
                resources[last].scopes.append(Scope())
            },
            scopeField: { field in
                let last = resources.count - 1
                let scope = resources[last].scopes.count - 1
                resources[last].scopes[scope].other.append(field)
            }
        ) { record, _, trace in
            let last = resources.count - 1
            let scope = resources[last].scopes.count - 1
            resources[last].scopes[scope].records.append(record)
            keys.append(trace.flatMap { $0 == 0 ? nil : $0 } ?? untraced)
            return true
        }
        let targets = assign(keys)
        let collectors = Set(targets).sorted()
        if collectors.count <= 1 { return collectors.map { Part(collector: $0, body: body, records: keys.count) } }
        var parts: [Part] = []
        for collector in collectors {
            var out: [UInt8] = []
            out.reserveCapacity(body.count / collectors.count + 64)
            var records = 0
            var n = 0  // the record index, across resources and scopes
            for resource in resources {
                var scopes: [(scope: Scope, records: [Range<Int>])] = []
                for scope in resource.scopes {
                    var mine: [Range<Int>] = []
                    for record in scope.records {
                        if targets[n] == collector { mine.append(record) }
                        n += 1
                    }
                    if !mine.isEmpty { scopes.append((scope, mine)) }
                }
                guard !scopes.isEmpty else { continue }
                let scopeLengths = scopes.map { s in (s.scope.other + s.records).reduce(0) { $0 + $1.count } }
                let resourceLength =
                    resource.other.reduce(0) { $0 + $1.count } + scopeLengths.reduce(0) { $0 + lengthFieldSize(field: 2, $1) }
                appendTag(&out, field: 1, length: resourceLength)
                for range in resource.other { out.append(contentsOf: body[range]) }
                for (i, s) in scopes.enumerated() {
                    appendTag(&out, field: 2, length: scopeLengths[i])
                    for range in s.scope.other { out.append(contentsOf: body[range]) }
                    for range in s.records { out.append(contentsOf: body[range]) }
                    records += s.records.count
                }
            }
            parts.append(Part(collector: collector, body: out, records: records))
        }
        return parts
    }

    private static func appendTag(_ out: inout [UInt8], field: Int, length: Int) {
        appendVarint(&out, UInt64(field << 3 | 2))
        appendVarint(&out, UInt64(length))
    }

    private static func appendVarint(_ out: inout [UInt8], _ value: UInt64) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Walks a request: `record` gets each record's whole field (tag, length and content), its
    /// content range and its trace id folded to 64 bits (`nil` without one); returning `false` stops.
    /// The other callbacks get each resource and scope as it starts, and their other fields.
    package static func walk(
        _ body: [UInt8], signal: TelemetrySignal, resource: () -> Void = {}, resourceField: (Range<Int>) -> Void = { _ in },
        scope: () -> Void = {}, scopeField: (Range<Int>) -> Void = { _ in },
        record: (Range<Int>, Range<Int>, UInt64?) -> Bool
    ) throws(ProtoDecodingError) {
        let traceField = traceField(signal)
        var reader = ByteFields(body, 0..<body.count)
        while let top = try reader.next() {
            guard top.number == 1, let resourceContent = top.content else { continue }
            resource()
            var inResource = ByteFields(body, resourceContent)
            while let field = try inResource.next() {
                guard field.number == 2, let scopeContent = field.content else {
                    resourceField(field.whole)
                    continue
                }
                scope()
                var inScope = ByteFields(body, scopeContent)
                while let item = try inScope.next() {
                    guard item.number == 2, let recordContent = item.content else {
                        scopeField(item.whole)
                        continue
                    }
                    var trace: UInt64?
                    var inRecord = ByteFields(body, recordContent)
                    while let f = try inRecord.next() {
                        if f.number == traceField, let id = f.content, id.count == 16 {
                            var hi: UInt64 = 0
                            var lo: UInt64 = 0
                            for i in 0..<8 {
                                hi = hi << 8 | UInt64(body[id.lowerBound + i])
                                lo = lo << 8 | UInt64(body[id.lowerBound + 8 + i])
                            }
                            trace = hi ^ lo
                            break
                        }
                    }
                    guard record(item.whole, recordContent, trace) else { return }
                }
            }
        }
    }
}

/// The fields of a protobuf message in `bytes[range]`, one by one, bounds-checked.
private struct ByteFields {
    let bytes: [UInt8]
    var offset: Int
    let end: Int

    init(_ bytes: [UInt8], _ range: Range<Int>) {
        self.bytes = bytes
        self.offset = range.lowerBound
        self.end = range.upperBound
    }

    /// The next field: its number, its whole bytes, and its content when length-delimited.
    mutating func next() throws(ProtoDecodingError) -> (number: Int, whole: Range<Int>, content: Range<Int>?)? {
        guard offset < end else { return nil }
        let start = offset
        let key = try varint()
        let number = Int(truncatingIfNeeded: key >> 3)
        guard number > 0 else { throw ProtoDecodingError("field number 0 at offset \(start)") }
        var content: Range<Int>?
        switch key & 7 {
        case 0: _ = try varint()
        case 1: try advance(8)
        case 2:
            let length = try varint()
            guard length <= UInt64(end - offset) else { throw ProtoDecodingError("length \(length) past the end") }
            content = offset..<(offset + Int(length))
            offset += Int(length)
        case 5: try advance(4)
        default: throw ProtoDecodingError("unknown wire type \(key & 7)")
        }
        return (number, start..<offset, content)
    }

    private mutating func advance(_ n: Int) throws(ProtoDecodingError) {
        guard end - offset >= n else { throw ProtoDecodingError("truncated field") }
        offset += n
    }

    private mutating func varint() throws(ProtoDecodingError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw ProtoDecodingError("truncated varint") }
            let byte = bytes[offset]
            offset += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            guard shift < 64 else { throw ProtoDecodingError("varint too long") }
        }
    }
}
