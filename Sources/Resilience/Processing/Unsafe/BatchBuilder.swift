/// Collects encoded records of one signal, grouped by instrumentation scope, and wraps them
/// into one `Export{Trace,Logs}ServiceRequest` by writing only the enclosing headers:
///
///     Export…ServiceRequest { resource_… = 1: Resource… {
///         resource = 1: Resource
///         scope_… = 2: Scope… { scope = 1: InstrumentationScope; spans|log_records = 2: record… } … } }
///
/// The records' bytes are never re-encoded. Used by the drain thread only; buffers are reused.
///
/// The stored properties are `@exclusivity(unchecked)`: one thread uses a builder, and the
/// dynamic checks of a class's `var`s were a third of the drain thread's instructions per record
/// (callgrind, a 5-attribute span: 1,269 instructions on the drain thread with them, 847 without).
final class BatchBuilder {
    let signal: TelemetrySignal
    /// The route index (0: the default route).
    let route: Int
    /// The records' bytes, back to back, in raw memory grown by doubling: `[UInt8].append(contentsOf:)`
    /// cost ~200 instructions a span here (callgrind), a copy into raw memory ~30.
    @exclusivity(unchecked) private var staging: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var stagingCapacity: Int
    @exclusivity(unchecked) private(set) var stagedBytes = 0
    /// Each record's scope index, offset and length in `staging`, in arrival order: one flat array
    /// (an array per scope cost two uniqueness checks a record); ``build(resource:scopes:)`` groups them.
    @exclusivity(unchecked) private var entries: [(scope: Int, offset: Int, length: Int)] = []
    /// The scope indexes that have records, in order of their first record.
    @exclusivity(unchecked) private var scopesInUse: [Int] = []
    /// Whether a scope index is in `scopesInUse`.
    @exclusivity(unchecked) private var scopeSeen: [Bool] = []
    @exclusivity(unchecked) private(set) var count = 0
    /// When this batch must be exported at the latest (monotonic nanoseconds).
    @exclusivity(unchecked) var deadline: UInt64 = 0
    /// The ring's hold on the first record's position (a file-backed ring holds its space from there on).
    @exclusivity(unchecked) var holdID: UInt64 = 0
    @exclusivity(unchecked) private var sequence: UInt64 = 0

    init(signal: TelemetrySignal, route: Int = 0, expectedBytes: Int) {
        self.signal = signal
        self.route = route
        stagingCapacity = max(expectedBytes, 256)
        staging = .allocate(byteCount: stagingCapacity, alignment: 16)
    }

    deinit { staging.deallocate() }

    var isEmpty: Bool { count == 0 }

    func append(scope: Int, _ record: UnsafeRawBufferPointer) {
        if scope >= scopeSeen.count { scopeSeen.append(contentsOf: repeatElement(false, count: scope - scopeSeen.count + 1)) }
        if !scopeSeen[scope] {
            scopeSeen[scope] = true
            scopesInUse.append(scope)
        }
        let length = record.count
        if stagedBytes &+ length > stagingCapacity { grow(to: stagedBytes + length) }
        if let source = record.baseAddress { (staging + stagedBytes).copyMemory(from: source, byteCount: length) }
        entries.append((scope, stagedBytes, length))
        stagedBytes &+= length
        count += 1
    }

    @inline(never)
    private func grow(to needed: Int) {
        (staging, stagingCapacity) = growRaw(staging, count: stagedBytes, capacity: stagingCapacity, toHold: needed)
    }

    /// The request body for everything collected; then empty again.
    func build(resource: [UInt8], scopes: [[UInt8]]) -> ExportBatch {
        var scopeSizes = [Int](repeating: 0, count: scopeSeen.count)
        for scope in scopesInUse { scopeSizes[scope] = lengthFieldSize(field: 1, scopes[scope].count) }
        for entry in entries { scopeSizes[entry.scope] += lengthFieldSize(field: 2, entry.length) }
        var resourceContent = lengthFieldSize(field: 1, resource.count)
        for scope in scopesInUse { resourceContent += lengthFieldSize(field: 2, scopeSizes[scope]) }
        let total = lengthFieldSize(field: 1, resourceContent)
        let staged = UnsafeRawPointer(staging)
        let body = [UInt8](unsafeUninitializedCapacity: total) { output, initialized in
            var writer = RawWriter(output)
            writer.field(1, length: resourceContent)
            writer.field(1, length: resource.count)
            writer.bytes(resource)
            let single = scopesInUse.count == 1
            for scope in scopesInUse {
                writer.field(2, length: scopeSizes[scope])
                writer.field(1, length: scopes[scope].count)
                writer.bytes(scopes[scope])
                for entry in entries where single || entry.scope == scope {
                    writer.field(2, length: entry.length)
                    writer.bytes(UnsafeRawBufferPointer(start: staged + entry.offset, count: entry.length))
                }
            }
            precondition(writer.offset == total, "batch size mismatch: \(writer.offset) != \(total)")
            initialized = total
        }
        let batch = ExportBatch(signal: signal, body: body, recordCount: count, sequence: sequence)
        sequence += 1
        reset()
        return batch
    }

    func reset() {
        for scope in scopesInUse { scopeSeen[scope] = false }
        scopesInUse.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
        stagedBytes = 0
        count = 0
    }
}

/// Writes protobuf headers and raw bytes into a buffer sized in advance.
struct RawWriter {
    let output: UnsafeMutableBufferPointer<UInt8>
    var offset = 0

    init(_ output: UnsafeMutableBufferPointer<UInt8>) { self.output = output }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            output[offset] = UInt8(truncatingIfNeeded: v) | 0x80
            offset += 1
            v >>= 7
        }
        output[offset] = UInt8(v)
        offset += 1
    }

    mutating func field(_ number: Int, length: Int) {
        varint(UInt64(number << 3 | 2))
        varint(UInt64(length))
    }

    mutating func bytes(_ source: [UInt8]) {
        source.withUnsafeBytes { bytes($0) }
    }

    mutating func bytes(_ source: UnsafeRawBufferPointer) {
        guard source.count > 0 else { return }
        UnsafeMutableRawBufferPointer(start: output.baseAddress! + offset, count: source.count).copyMemory(from: source)
        offset += source.count
    }
}
