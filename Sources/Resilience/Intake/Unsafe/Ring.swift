internal import CRingBuffer

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The Swift owner of one `crb_ring_t`. Producers call ``tryWrite(type:from:)`` from any
/// thread; exactly one thread calls ``drain(maxBytes:_:)``.
final class Ring: @unchecked Sendable {
    private let ring: OpaquePointer
    let capacity: Int
    let maximumRecordLength: Int

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
    }

    deinit { crb_destroy(ring) }

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

    /// Bytes claimed and not yet consumed.
    var bytesInUse: Int { crb_size(ring) }

    var headPosition: UInt64 { crb_head_position(ring) }
    var tailPosition: UInt64 { crb_tail_position(ring) }

    /// Hands each committed record (type, payload) to `body`, at most about `maxBytes`
    /// in one contiguous run. Consumer only. The payload must not escape `body`.
    /// Returns the number of records.
    func drain(maxBytes: Int, _ body: (Int32, UnsafeRawBufferPointer) -> Void) -> Int {
        withoutActuallyEscaping(body) { body in
            var box = DrainContext(body: body)
            return withUnsafeMutablePointer(to: &box) { context in
                Int(
                    crb_drain(
                        ring,
                        { run, length, _, context in
                            let box = context!.assumingMemoryBound(to: DrainContext.self)
                            var offset = 0
                            while offset < length {
                                let record = run! + offset
                                offset += Int(crb_record_stride(record))
                                let type = crb_record_type(record)
                                if type == CRB_PADDING_TYPE { continue }
                                box.pointee.body(
                                    type,
                                    UnsafeRawBufferPointer(
                                        start: record + Int(CRB_HEADER_LENGTH), count: Int(crb_record_length(record))))
                            }
                        }, context, maxBytes))
            }
        }
    }
}

private struct DrainContext {
    let body: (Int32, UnsafeRawBufferPointer) -> Void
}
