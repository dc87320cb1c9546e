internal import CRingBuffer

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The Swift owner of one `crb_ring_t`. Producers call ``tryWrite(type:from:)`` from any
/// thread; exactly one thread calls ``drain(maxBytes:_:)``.
///
/// An anonymous ring (``init(capacity:)``) frees a record's space as it drains it; a file-backed
/// one (``RingFile``) keeps it until ``release(to:)``, so a crashed process leaves it in the file.
final class Ring: @unchecked Sendable {
    private let ring: OpaquePointer
    let capacity: Int
    let maximumRecordLength: Int
    /// The ring file's descriptor (closed in `deinit`), or -1 for an anonymous ring.
    private let fileDescriptor: Int32
    /// Records before this position were recovered from an earlier process's ring file.
    let recoveredEnd: UInt64

    /// Takes over a ring `crb_open_file` mapped from `fileDescriptor`.
    init(file ring: OpaquePointer, fileDescriptor: Int32) {
        self.ring = ring
        self.capacity = crb_capacity(ring)
        self.maximumRecordLength = Int(crb_max_length(ring))
        self.fileDescriptor = fileDescriptor
        self.recoveredEnd = crb_tail_position(ring)
    }

    var isFileBacked: Bool { fileDescriptor >= 0 }

    init(capacity: Int) throws(ConfigurationError) {
        var ring: OpaquePointer?
        let rc = crb_create(capacity, &ring)
        guard rc == 0, let ring else {
            throw ConfigurationError(
                key: "ringCapacity", value: "\(capacity)",
                allowed: "a power of two from 1024 bytes to 1 GiB (crb_create returned \(rc))")
        }
        self.ring = ring
        self.capacity = capacity
        self.maximumRecordLength = Int(crb_max_length(ring))
        self.fileDescriptor = -1
        self.recoveredEnd = 0
    }

    deinit {
        crb_destroy(ring)
        if fileDescriptor >= 0 { close(fileDescriptor) }
    }

    /// The largest record a ring of `capacity` bytes takes (`crb_max_length`: an eighth of the
    /// capacity, less a record header).
    static func maximumRecordLength(capacity: Int) -> Int { capacity / 8 - Int(CRB_HEADER_LENGTH) }

    enum WriteResult {
        case written, full, tooLarge
    }

    /// Copies `length` bytes from `source` into one record of `type`.
    @inline(__always)
    func tryWrite(type: Int32, from source: UnsafeRawPointer, length: Int) -> WriteResult {
        switch crb_write_mpsc(ring, type, source, UInt32(truncatingIfNeeded: length)) {
        case 0: return .written
        case -ENOSPC: return .full
        default: return .tooLarge
        }
    }

    /// Makes producers leave `bytes` of the ring free for ``write(type:count:body:)`` (at most half
    /// the ring; `crb_set_reserve`). Before producers run.
    func reserveForRelocation(_ bytes: Int) { crb_set_reserve(ring, bytes) }

    /// Writes one record of `type` made of `count` (4 bytes, little-endian) and `body`; its
    /// position, or `nil` when the ring has no room (or it exceeds ``maximumRecordLength``).
    func write(type: Int32, count: UInt32, body: [UInt8]) -> UInt64? {
        var claim = crb_claim_t()
        // The reserve producers leave free (``reserveForRelocation(_:)``): a relocation is what
        // frees a full ring, so it must fit when producers can no longer.
        guard crb_claim_reserved(ring, type, UInt32(truncatingIfNeeded: 4 + body.count), &claim) == 0 else { return nil }
        withUnsafeBytes(of: count.littleEndian) { UnsafeMutableRawPointer(claim.data!).copyMemory(from: $0.baseAddress!, byteCount: 4) }
        body.withUnsafeBytes { UnsafeMutableRawPointer(claim.data! + 4).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        crb_commit(ring, &claim)
        return claim.position
    }

    /// Copies one record in, as ``tryWrite(type:from:length:)``, and returns the position just past
    /// it (for ``RingSyncer/waitDurable(end:timeoutNanoseconds:)``), or 0 when it did not fit.
    @inline(__always)
    func writeReturningEnd(type: Int32, from source: UnsafeRawPointer, length: Int) -> UInt64 {
        crb_write_mpsc_end(ring, type, source, UInt32(truncatingIfNeeded: length))
    }

    /// Makes the committed records since the last sync durable (`crb_sync`): its result and the range.
    func sync() -> (rc: Int32, from: UInt64, to: UInt64) {
        var (from, to): (UInt64, UInt64) = (0, 0)
        let rc = crb_sync(ring, &from, &to)
        return (rc, from, to)
    }

    /// Bytes claimed and not yet released (read records a file-backed ring still keeps included).
    var bytesInUse: Int { crb_size(ring) }
    /// Bytes claimed and not yet handed to the consumer.
    var unreadBytes: Int { crb_unread(ring) }

    var headPosition: UInt64 { crb_head_position(ring) }
    var readPosition: UInt64 { crb_read_position(ring) }
    var tailPosition: UInt64 { crb_tail_position(ring) }

    /// Frees the space of the records before `position` (at most the read position). One thread
    /// at a time; a file-backed ring only.
    func release(to position: UInt64) { crb_release(ring, position) }

    /// Hands each committed record (type, payload, position) to `body`, at most about `maxBytes`
    /// in one contiguous run. Consumer only. The payload must not escape `body`.
    /// Returns the number of records.
    func drain(maxBytes: Int, _ body: (Int32, UnsafeRawBufferPointer, UInt64) -> Void) -> Int {
        withoutActuallyEscaping(body) { body in
            var box = DrainContext(ring: ring, body: body)
            return withUnsafeMutablePointer(to: &box) { context in
                Int(
                    crb_drain(
                        ring,
                        { run, length, _, context in
                            let box = context!.assumingMemoryBound(to: DrainContext.self)
                            let start = crb_read_position(box.pointee.ring)
                            // Taken out once per run: called through the box, the closure's context
                            // was retained and released around every record.
                            let body = box.pointee.body
                            var offset = 0
                            while offset < length {
                                let record = run! + offset
                                let position = start &+ UInt64(offset)
                                offset += Int(crb_record_stride(record))
                                let type = crb_record_type(record)
                                if type == CRB_PADDING_TYPE { continue }
                                body(
                                    type,
                                    UnsafeRawBufferPointer(
                                        start: record + Int(CRB_HEADER_LENGTH), count: Int(crb_record_length(record))),
                                    position)
                            }
                        }, context, maxBytes))
            }
        }
    }
}

private struct DrainContext {
    let ring: OpaquePointer
    let body: (Int32, UnsafeRawBufferPointer, UInt64) -> Void
}
