internal import CSpill

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The spill segment writer of one signal directory (CSpill's `csp_writer_t`). One thread at a
/// time: its owner holds a lock, which is what makes the `@unchecked Sendable` true.
package final class SegmentWriter: @unchecked Sendable {
    private let writer: OpaquePointer

    /// The zstd level of every frame: -1 (zstd's first "fast" level). On the pipeline's own
    /// requests (libzstd 1.5.4, 2026-12-07) it compressed spans to 5.60× at 215–250 ns a span
    /// where level 1 took 343–362 ns for 5.37×, and log records as tightly as level 1 (16.0×)
    /// in 11 % less time; levels -3 and below were barely faster and gave up a tenth or more of
    /// the ratio. Readers do not depend on the level.
    package static let zstdLevel: Int32 = -1

    package struct Failure: Error {
        package var errno: Int32
        /// Records of an earlier frame whose asynchronous write failed (cut from its segment).
        package var lostRecords = 0
        package var lostSegment: UInt64 = 0
        package var isDiskFull: Bool { errno == ENOSPC || errno == EDQUOT }
        package var message: String { String(cString: strerror(errno)) }
    }

    /// Where an appended frame went.
    package struct Placement {
        package var segment: UInt64
        package var offset: UInt64
        /// Made durable before the append returned (`always`).
        package var durable: Bool
    }

    package init(
        directory: String, signal: TelemetrySignal, firstSegment: UInt64, configuration: SpillConfiguration, rejectedArea: Bool = false
    ) throws(Failure) {
        var durability = Int32(CSP_DURABILITY_NONE)
        var interval: UInt64 = 0
        switch configuration.durability {
        case .none: break
        case .always: durability = Int32(CSP_DURABILITY_ALWAYS)
        case .interval(let t):
            durability = Int32(CSP_DURABILITY_INTERVAL)
            interval = UInt64(clamping: t.nanoseconds)
        }
        var handle: OpaquePointer?
        let rc = directory.withCString { path -> Int32 in
            var options = csp_writer_options_t(
                directory: path, signal: UInt16(signal.rawValue), segment_sequence: firstSegment,
                max_segment_bytes: UInt64(configuration.maxSegmentBytes),
                max_segment_age_ns: UInt64(clamping: configuration.maxSegmentAge.nanoseconds),
                durability: durability, sync_interval_ns: interval,
                io: configuration.io == .pwrite ? Int32(CSP_IO_PWRITE) : Int32(CSP_IO_AUTO),
                zstd_level: SegmentWriter.zstdLevel, flags: rejectedArea ? CSP_SEGMENT_REJECTED : 0)
            return csp_writer_open(&options, &handle)
        }
        guard rc == 0, let handle else { throw Failure(errno: -rc) }
        writer = handle
    }

    deinit { csp_writer_close(writer) }

    /// Appends one request as a frame; returns the segment and offset it went to.
    package func append(_ batch: ExportBatch) throws(Failure) -> Placement {
        try append(batch.body, records: batch.recordCount, batchSequence: batch.sequence)
    }

    /// Appends `payload` as a frame of `records` records (the crash test writes payloads that name
    /// themselves; the pipeline writes requests).
    package func append(_ payload: [UInt8], records: Int, batchSequence: UInt64) throws(Failure) -> Placement {
        var info = csp_frame_info_t()
        let rc = payload.withUnsafeBytes {
            csp_writer_append(writer, $0.baseAddress, UInt32($0.count), UInt32(records), batchSequence, &info)
        }
        guard rc == 0 else { throw failure(rc) }
        return Placement(segment: info.segment_sequence, offset: info.offset, durable: info.durable != 0)
    }

    package func rotate() throws(Failure) {
        let rc = csp_writer_rotate(writer)
        guard rc == 0 else { throw failure(rc) }
    }

    /// The error of a call, with what an earlier asynchronous write lost.
    private func failure(_ rc: Int32) -> Failure {
        var frames: UInt64 = 0, records: UInt64 = 0, segment: UInt64 = 0
        csp_writer_take_lost(writer, &frames, &records, &segment)
        return Failure(errno: -rc, lostRecords: Int(records), lostSegment: segment)
    }

    package var usesIoUring: Bool { csp_writer_io(writer) == Int32(CSP_IO_URING) }
    /// The sequence of the open segment, or of the next one.
    package var segmentSequence: UInt64 { csp_writer_segment_sequence(writer) }
}

/// Why a file could not be read as a spill segment.
package struct SegmentFileError: Error, Sendable, CustomStringConvertible {
    package var path: String
    /// `ENOENT`, `EACCES`, … for a file that cannot be opened; `EBADMSG` for one that is not a segment.
    package var errno: Int32
    /// What is wrong, without the path.
    package var reason: String {
        errno == EBADMSG ? "not a spill segment (no SPILLWAY version-1 header)" : String(cString: strerror(errno))
    }
    package var description: String { "\(path): \(reason)" }
}

/// Reads the frames of one segment file (CSpill's `csp_reader_t`, memory-mapped, read-only).
/// The library's replay and the `spillway` file tools both read through it.
package final class SegmentReader {
    private let reader: OpaquePointer
    package let sequence: UInt64
    /// From the segment header (never from the file's path).
    package let signal: TelemetrySignal
    /// The header's flags: ``isRejectedArea``.
    package let flags: UInt32
    package let createdNanos: UInt64
    package let size: UInt64

    package enum Entry {
        /// A frame whose CRCs, zstd frame and record count check out.
        case frame(Frame)
        /// Damage, skipped: `records` lost when the header was intact (`nil`: unknown).
        case damaged(Damage)
    }

    package struct Frame {
        package var offset: UInt64
        package var compressedLength: Int
        /// The decompressed request; empty for a headers-only reader.
        package var body: [UInt8]
        package var records: Int
        package var batchSequence: UInt64
    }

    package struct Damage {
        package var offset: UInt64
        package var length: UInt64
        /// Records the damaged frame's intact header names; `nil` when unknown.
        package var records: Int?
        /// No intact frame follows: the tail of a segment cut short while being written.
        package var isTornTail: Bool
        package var reason: String
    }

    /// Opens `path`. With `headersOnly`, frames are checked (CRCs) and counted but not
    /// decompressed: `body` is empty.
    /// - Throws: ``SegmentFileError``: the file cannot be opened, or is not a segment.
    package init(path: String, headersOnly: Bool = false) throws(SegmentFileError) {
        var handle: OpaquePointer?
        var header = csp_segment_header_t()
        let rc = csp_reader_open(path, &handle, &header)
        guard rc == 0, let handle else { throw SegmentFileError(path: path, errno: -rc) }
        guard let signal = TelemetrySignal(rawValue: UInt8(truncatingIfNeeded: header.signal)) else {
            csp_reader_close(handle)
            throw SegmentFileError(path: path, errno: EBADMSG)
        }
        if headersOnly { csp_reader_set_headers_only(handle, 1) }
        reader = handle
        sequence = header.sequence
        self.signal = signal
        flags = header.flags
        createdNanos = header.created_ns
        size = csp_reader_size(handle)
    }

    deinit { csp_reader_close(reader) }

    /// Whether the segment was written to the rejected area.
    package var isRejectedArea: Bool { flags & CSP_SEGMENT_REJECTED != 0 }

    /// The next frame or damage, in file order; `nil` at the end.
    package func next() -> Entry? {
        var frame = csp_frame_t()
        let rc = csp_reader_next(reader, &frame)
        switch rc {
        case 1:
            let body = frame.payload == nil ? [] : [UInt8](UnsafeBufferPointer(start: frame.payload, count: Int(frame.uncompressed_length)))
            return .frame(
                Frame(
                    offset: frame.offset, compressedLength: Int(frame.compressed_length), body: body, records: Int(frame.records),
                    batchSequence: frame.batch_sequence))
        case 0:
            return nil
        default:
            let known = frame.flags & CSP_FRAME_RECORDS_KNOWN != 0
            let intact = frame.flags & CSP_FRAME_HEADER_INTACT != 0
            let torn = rc == -ENODATA
            let reason =
                torn
                ? "torn tail (cut short while being written)"
                : known
                    ? "damaged frame (payload CRC, zstd, or a length beyond the file)"
                    : intact ? "a frame header whose record count its payload cannot hold" : "damaged frame header"
            return .damaged(
                Damage(
                    offset: frame.offset, length: frame.skipped_bytes, records: known ? Int(frame.records) : nil, isTornTail: torn,
                    reason: reason))
        }
    }
}

/// What recovering an `.open` segment did.
package struct SegmentRecovery: Sendable {
    package var frames: Int
    package var records: Int
    package var damaged: Int
    package var truncatedBytes: UInt64
    /// The file was cut inside its segment header and removed.
    package var removed: Bool
}

/// Recovers a segment left `.open` by a crash (`csp_recover`): keeps every intact frame, cuts
/// the torn tail, renames it `.spill`. - Throws: ``SegmentFileError``.
package func recoverSegment(path: String) throws(SegmentFileError) -> SegmentRecovery {
    var result = csp_recovery_t()
    let rc = csp_recover(path, &result)
    guard rc == 0 else { throw SegmentFileError(path: path, errno: -rc) }
    return SegmentRecovery(
        frames: Int(result.frames), records: Int(result.records), damaged: Int(result.damaged), truncatedBytes: result.truncated_bytes,
        removed: result.removed != 0)
}

/// `<directory>/<20-digit sequence>.<suffix>`: the one naming of segment files (`csp_segment_path`).
package func segmentPath(_ directory: String, _ sequence: UInt64, _ suffix: String) -> String {
    var buffer = [CChar](repeating: 0, count: 4200)
    let rc = buffer.withUnsafeMutableBufferPointer { out in
        directory.withCString { d in suffix.withCString { s in csp_segment_path(d, sequence, s, out.baseAddress, out.count) } }
    }
    precondition(rc == 0, "segment path too long: \(directory)")
    return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// CRC32C (Castagnoli), as the spill format checksums headers and payloads (`csp_crc32c`: the
/// SSE4.2 instruction where the CPU has it). For tools and tests that forge or check frames.
package enum SpillChecksum {
    package static func crc32c(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        csp_crc32c(0, bytes.baseAddress, bytes.count)
    }
}
