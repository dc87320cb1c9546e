internal import CRingBuffer

/// Entry points for the `Benchmarks/` package, which cannot see internal types.
/// Not API: may change in any release.
public enum _SpillwayBenchmarkHooks {
    /// Builds one request from `records` synthetic encoded records of `recordSize` bytes in
    /// `scopes` scopes (the drain thread's batch assembly) and returns its size.
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

        /// crb_write_mpsc of `length` bytes; drains the ring when it is full. Returns false if full twice.
        @inline(__always)
        public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
            if ring.tryWrite(type: 1, from: bytes.baseAddress!, length: bytes.count) == .written { return true }
            drain()
            return ring.tryWrite(type: 1, from: bytes.baseAddress!, length: bytes.count) == .written
        }

        /// Consumes everything committed.
        public func drain() {
            while ring.drain(maxBytes: 1 << 20, { _, _ in }) > 0 {}
        }
    }
}
