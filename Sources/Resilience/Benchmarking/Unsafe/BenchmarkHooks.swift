internal import CRingBuffer
internal import CSpill

/// Entry points for the `Benchmarks/` package, which cannot see internal types. Behind
/// `@_spi(Benchmarks)`: not part of the public API (a client sees it only by asking for the SPI),
/// and it may change in any release.
@_spi(Benchmarks) public enum _SpillwayBenchmarkHooks {
    /// Builds one request from `records` synthetic encoded records of `recordSize` bytes in
    /// `scopes` scopes (the drain thread's batch assembly) and returns its size.
    /// Collects every metric series of `pipeline` and encodes the OTLP requests, without
    /// exporting them (what each export interval costs the reader). Returns the bytes encoded.
    public static func collectMetrics(of pipeline: TelemetryPipeline) -> Int {
        let now = nowUnixNano()
        let families = pipeline.metricRegistry.collect(temporality: .cumulative, now: now)
        let requests = MetricEncoding.requests(families, resource: [], temporality: .cumulative, now: now)
        return requests.reduce(0) { $0 + $1.body.count }
    }

    public static func assembleBatch(records: Int, recordSize: Int, scopes: Int) -> Int {
        let builder = BatchBuilder(signal: .traces, expectedBytes: records * recordSize)
        let record = [UInt8](repeating: 0x2A, count: recordSize)
        let encodedScopes = (0..<scopes).map { ResourceEncoding.encodeScope(name: "scope.\($0)", version: "1.0") }
        record.withUnsafeBytes { bytes in
            for i in 0..<records { builder.append(scope: i % scopes, bytes) }
        }
        return builder.build(resource: ResourceEncoding.encode(PipelineConfiguration()), scopes: encodedScopes).body.count
    }

    /// A bare ring for claim + commit measurements.
    public final class RingHandle: @unchecked Sendable {
        let ring: Ring
        public init(capacity: Int) throws { ring = try Ring(capacity: capacity) }

        /// A file-backed ring: the file `ring` in `directory` (created; released as it is drained).
        public init(capacity: Int, directory: String) throws {
            ring = try RingFile.open(directory: directory, capacity: capacity, routes: [nil]).ring
        }

        /// crb_write_mpsc of `length` bytes; drains the ring when it is full. Returns false if full twice.
        @inline(__always)
        public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
            if ring.tryWrite(type: 1, from: bytes.baseAddress!, length: bytes.count) == .written { return true }
            drain()
            return ring.tryWrite(type: 1, from: bytes.baseAddress!, length: bytes.count) == .written
        }

        /// Consumes everything committed.
        public func drain() {
            while ring.drain(maxBytes: 1 << 20, { _, _, _ in }) > 0 {}
            if ring.isFileBacked { ring.release(to: .max) }
        }
    }
}

extension _SpillwayBenchmarkHooks {
    /// A spill segment writer on `directory` (durability none, 64 MiB segments).
    public final class SpillWriterHandle: @unchecked Sendable {
        let writer: SegmentWriter
        public let usesIoUring: Bool

        public init(directory: String, pwrite: Bool) throws {
            let configuration = SpillConfiguration(directory: directory, durability: .none, io: pwrite ? .pwrite : .automatic)
            do {
                writer = try SegmentWriter(directory: directory, signal: .traces, firstSegment: 1, configuration: configuration)
            } catch {
                throw ResilienceError(code: .spillFailed, message: error.message)
            }
            usesIoUring = writer.usesIoUring
        }

        /// Appends one request as a frame.
        public func append(_ batch: ExportBatch) throws {
            do { _ = try writer.append(batch) } catch { throw ResilienceError(code: .spillFailed, message: error.message) }
        }
    }

    /// zstd of `body` alone at the spill store's level (the spill ceiling); returns the compressed size.
    public static func zstdSpillLevel(_ body: [UInt8], into output: inout [UInt8]) -> Int {
        if output.count < body.count + 1024 { output = [UInt8](repeating: 0, count: body.count + body.count / 2 + 1024) }
        let capacity = output.count
        return output.withUnsafeMutableBytes { out in
            body.withUnsafeBytes { csp_zstd_compress(out.baseAddress, capacity, $0.baseAddress, $0.count, SegmentWriter.zstdLevel) }
        }
    }
}
