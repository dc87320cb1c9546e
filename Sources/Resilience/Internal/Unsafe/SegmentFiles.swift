internal import CSpill
import Glibc

/// The spill segment writer of one signal directory (CSpill's `csp_writer_t`). One thread at a
/// time: its owner holds a lock, which is what makes the `@unchecked Sendable` true.
final class SegmentWriter: @unchecked Sendable {
    private let writer: OpaquePointer

    struct Failure: Error {
        var errno: Int32
        /// Records of an earlier frame whose asynchronous write failed (cut from its segment).
        var lostRecords = 0
        var lostSegment: UInt64 = 0
        var isDiskFull: Bool { errno == ENOSPC || errno == EDQUOT }
        var message: String { String(cString: strerror(errno)) }
    }

    init(directory: String, signal: TelemetrySignal, firstSegment: UInt64, configuration: SpillConfiguration) throws(Failure) {
        var durability = Int32(CSP_DURABILITY_NONE)
        var interval: UInt64 = 0
        switch configuration.durability {
        case .none: break
        case .always: durability = Int32(CSP_DURABILITY_ALWAYS)
        case .interval(let t): durability = Int32(CSP_DURABILITY_INTERVAL); interval = UInt64(clamping: t.nanoseconds)
        }
        var handle: OpaquePointer?
        let rc = directory.withCString { path -> Int32 in
            var options = csp_writer_options_t(
                directory: path, signal: UInt16(signal.rawValue), segment_sequence: firstSegment,
                max_segment_bytes: UInt64(configuration.maxSegmentBytes), max_segment_age_ns: UInt64(clamping: configuration.maxSegmentAge.nanoseconds),
                durability: durability, sync_interval_ns: interval, io: configuration.io == .pwrite ? Int32(CSP_IO_PWRITE) : Int32(CSP_IO_AUTO),
                zstd_level: 1, flags: 0)
            return csp_writer_open(&options, &handle)
        }
        guard rc == 0, let handle else { throw Failure(errno: -rc) }
        writer = handle
    }

    deinit { csp_writer_close(writer) }

    /// Appends one request as a frame; returns the segment it went to.
    func append(_ batch: ExportBatch) throws(Failure) -> UInt64 {
        var info = csp_frame_info_t()
        let rc = batch.body.withUnsafeBytes {
            csp_writer_append(writer, $0.baseAddress, UInt32($0.count), UInt32(batch.recordCount), batch.sequence, &info)
        }
        guard rc == 0 else { throw failure(rc) }
        return info.segment_sequence
    }

    func rotate() throws(Failure) {
        let rc = csp_writer_rotate(writer)
        guard rc == 0 else { throw failure(rc) }
    }

    /// The error of a call, with what an earlier asynchronous write lost.
    private func failure(_ rc: Int32) -> Failure {
        var frames: UInt64 = 0, records: UInt64 = 0, segment: UInt64 = 0
        csp_writer_take_lost(writer, &frames, &records, &segment)
        return Failure(errno: -rc, lostRecords: Int(records), lostSegment: segment)
    }

    var usesIoUring: Bool { csp_writer_io(writer) == Int32(CSP_IO_URING) }
    /// The sequence of the open segment, or of the next one.
    var segmentSequence: UInt64 { csp_writer_segment_sequence(writer) }
}

/// Reads the frames of one segment (CSpill's `csp_reader_t`).
final class SegmentReader {
    private let reader: OpaquePointer
    let sequence: UInt64
    let signal: TelemetrySignal?

    enum Frame {
        case frame(body: [UInt8], records: Int, batchSequence: UInt64)
        /// Damaged: skipped; `records` lost (0 when the header itself was damaged).
        case damaged(records: Int, offset: UInt64)
        case end
    }

    /// With `headersOnly`, frames are checked (CRCs) and counted but not decompressed: `body` is empty.
    init?(path: String, headersOnly: Bool = false) {
        var handle: OpaquePointer?
        var header = csp_segment_header_t()
        guard csp_reader_open(path, &handle, &header) == 0, let handle else { return nil }
        if headersOnly { csp_reader_set_headers_only(handle, 1) }
        reader = handle
        sequence = header.sequence
        signal = TelemetrySignal(rawValue: UInt8(truncatingIfNeeded: header.signal))
    }

    deinit { csp_reader_close(reader) }

    func next() -> Frame {
        var frame = csp_frame_t()
        let rc = csp_reader_next(reader, &frame)
        switch rc {
        case 1:
            let body = frame.payload == nil ? [] : [UInt8](UnsafeBufferPointer(start: frame.payload, count: Int(frame.uncompressed_length)))
            return .frame(body: body, records: Int(frame.records), batchSequence: frame.batch_sequence)
        case 0:
            return .end
        default:
            return .damaged(records: Int(frame.records), offset: frame.offset)
        }
    }
}

/// Recovers a segment left `.open`; returns the records it kept, or `nil` if it failed.
func recoverSegment(path: String) -> (records: Int, truncatedBytes: UInt64)? {
    var result = csp_recovery_t()
    guard csp_recover(path, &result) == 0 else { return nil }
    return (Int(result.records), result.truncated_bytes)
}
