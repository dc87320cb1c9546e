/// Walks one segment for replay, in file order: skips the entries its progress says are done,
/// checks each frame's record count against the request it holds (a mismatch is damage), and
/// keeps the progress. The pipeline's ``Replayer`` and `spillway replay` both replay through it.
package final class SegmentCursor {
    package let path: String
    package let reader: SegmentReader
    /// The entries done so far (those the progress file named, then each ``done(_:)``).
    package private(set) var progress: SegmentProgress
    private var read = 0

    package enum Entry {
        /// An intact frame, as the request to send again (its signal from the segment header).
        case frame(ExportBatch, offset: UInt64)
        /// Damage: skipped, its records lost (``SegmentReader/Damage/records`` when known).
        case damaged(SegmentReader.Damage)

        /// Records it holds, or lost (0 when unknown).
        package var records: Int {
            switch self {
            case .frame(let batch, _): return batch.recordCount
            case .damaged(let damage): return damage.records ?? 0
            }
        }
    }

    /// Opens `path` and skips the first `progress.entries` entries.
    /// - Throws: ``SegmentFileError`` when the file cannot be opened or is not a segment.
    package init(path: String, progress: SegmentProgress = SegmentProgress()) throws(SegmentFileError) {
        self.path = path
        self.reader = try SegmentReader(path: path)
        self.progress = progress
        while read < progress.entries, reader.next() != nil { read += 1 }
    }

    /// The next entry not done yet, or `nil` at the end of the segment.
    package func next() -> Entry? {
        guard let raw = reader.next() else { return nil }
        read += 1
        switch raw {
        case .damaged(let damage):
            return .damaged(damage)
        case .frame(let frame):
            let length = UInt64(frame.compressedLength) + 32
            do {
                let count = try OTLPDecoding.count(frame.body, signal: reader.signal)
                guard count == frame.records else {
                    return .damaged(
                        SegmentReader.Damage(
                            offset: frame.offset, length: length, records: frame.records, isTornTail: false,
                            reason: "its header says \(frame.records) records, the request holds \(count)"))
                }
            } catch {
                return .damaged(
                    SegmentReader.Damage(
                        offset: frame.offset, length: length, records: frame.records, isTornTail: false,
                        reason: "not an OTLP \(reader.signal) request: \(error)"))
            }
            let batch = ExportBatch(signal: reader.signal, body: frame.body, recordCount: frame.records, sequence: frame.batchSequence)
            return .frame(batch, offset: frame.offset)
        }
    }

    /// The oldest entry handed out and not done yet is done: delivered, moved to another area,
    /// or (damage) counted. Entries are done in the order ``next()`` handed them out.
    package func done(_ entry: Entry) {
        progress.entries += 1
        progress.records += entry.records
        if case .damaged = entry { progress.damaged += 1 }
    }
}
