import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The failure destination on disk: per area (spilled, rejected, refused; see ``SpillArea``)
/// and signal, a segment writer, the segments' books, retention, and what the replayer needs.
///
/// Holds the spill directory's lock (``SpillDirectoryLock``) from `init` to ``close()``.
///
/// Thread-safety: every method is safe from any thread; one lock per area and signal is held
/// across a write (the C writer is single-threaded).
final class SpillStore: Sendable {
    let configuration: SpillConfiguration
    let usesIoUring: Bool
    /// Told when records that an earlier append accepted were lost after all (an asynchronous
    /// write failed): the pipeline moves them from the area's count to dropped and reports them.
    let onLost = Mutex<(@Sendable (TelemetrySignal, SpillArea, Int, DropReason) -> Void)?>(nil)
    private let lock: Mutex<SpillDirectoryLock?>
    private let stores: [AreaStore]
    private let isClosed = Atomic<Bool>(false)

    /// One sealed or open segment in the books.
    struct Segment: Sendable {
        var area: SpillArea
        var signal: TelemetrySignal
        var sequence: UInt64
        /// Records written to it (from the frame headers at start-up).
        var records = 0
        var progress = SegmentProgress()
        var createdNanos: UInt64
        var unacknowledged: Int { records - progress.records }
    }

    final class AreaStore: Sendable {
        let area: SpillArea
        let signal: TelemetrySignal
        let directory: String
        struct State {
            var writer: SegmentWriter?
            var segments: [UInt64: Segment] = [:]
            var nextSequence: UInt64 = 1
        }
        let state: Mutex<State>

        init(area: SpillArea, signal: TelemetrySignal, directory: String) {
            self.area = area
            self.signal = signal
            self.directory = directory
            self.state = Mutex(State())
        }

        func path(_ sequence: UInt64, _ suffix: String) -> String { segmentPath(directory, sequence, suffix) }
    }

    /// Takes the directory's lock, opens (creating) every area's signal directories, recovers
    /// `.open` segments left by a crash, and counts the records already on disk.
    /// - Throws: ``ConfigurationError`` (key `spill.directory`) when the directory cannot be
    ///   created or written, or another pipeline holds it.
    init(configuration: SpillConfiguration, logger: Logger) throws(ConfigurationError) {
        self.configuration = configuration
        func refuse(_ why: String) -> ConfigurationError {
            ConfigurationError(key: "spill.directory", value: configuration.directory, allowed: why)
        }
        if mkdir(configuration.directory, 0o700) != 0 && errno != EEXIST {
            throw refuse("a directory this process can create and write (\(String(cString: strerror(errno))))")
        }
        do {
            lock = Mutex(try SpillDirectoryLock(spillDirectory: configuration.directory))
        } catch {
            if error.errno != nil { throw refuse("a directory this process can write (\(error))") }
            throw refuse("a directory no other pipeline spills to: \(error)")
        }
        for area in [SpillArea.rejected, .refused] where mkdir(configuration.directory + "/" + area.rawValue, 0o700) != 0 && errno != EEXIST
        {
            throw refuse("a directory this process can write (\(String(cString: strerror(errno))))")
        }
        var stores: [AreaStore] = []
        var ioUring = true
        for area in SpillArea.allCases {
            for signal in TelemetrySignal.allCases {
                let store = AreaStore(area: area, signal: signal, directory: SpillLayout.directory(configuration.directory, area, signal))
                if mkdir(store.directory, 0o700) != 0 && errno != EEXIST {
                    throw refuse("a directory this process can create and write (\(String(cString: strerror(errno))))")
                }
                let (segments, maxSequence) = Self.load(store, logger: logger)
                // The spilled area's writers open now (so io_uring or pwrite is known at start);
                // the others when first needed.
                var writer: SegmentWriter?
                if area == .spilled {
                    do {
                        writer = try SegmentWriter(
                            directory: store.directory, signal: signal, firstSegment: maxSequence + 1, configuration: configuration)
                    } catch {
                        throw refuse("a writable directory (\(error.message))")
                    }
                    ioUring = ioUring && writer!.usesIoUring
                }
                store.state.withLock { state in
                    state.writer = writer
                    state.segments = segments
                    state.nextSequence = maxSequence + 1
                }
                stores.append(store)
            }
        }
        self.stores = stores
        self.usesIoUring = ioUring
        if !ioUring {
            logger.notice("spill: io_uring is not available here (or SPILLWAY_SPILL_IO=pwrite); writing with pwrite")
        }
    }

    /// Recovers the `.open` segments of one area directory and counts its sealed segments.
    private static func load(_ store: AreaStore, logger: Logger) -> (segments: [UInt64: Segment], maxSequence: UInt64) {
        var maxSequence: UInt64 = 0
        for name in SpillLayout.list(store.directory) where name.hasSuffix(".open") {
            do {
                let recovered = try recoverSegment(path: store.directory + "/" + name)
                let message =
                    "spill: recovered \(store.directory)/\(name): \(recovered.records) records kept, \(recovered.damaged) damaged "
                    + "stretches, \(recovered.truncatedBytes) torn bytes cut"
                logger.notice("\(message)")
            } catch {
                logger.error("spill: could not recover \(error); left as it is")
            }
        }
        var segments: [UInt64: Segment] = [:]
        for name in SpillLayout.list(store.directory) {
            guard let (sequence, suffix) = SpillLayout.parse(name) else { continue }
            maxSequence = max(maxSequence, sequence)
            guard suffix == "spill" else { continue }
            // Counting needs the headers only (CRCs still checked): no decompression at start-up.
            guard let reader = try? SegmentReader(path: store.directory + "/" + name, headersOnly: true) else {
                logger.error("spill: \(store.directory)/\(name) is not a spill segment; left alone")
                continue
            }
            if reader.signal != store.signal {
                logger.warning(
                    "spill: \(store.directory)/\(name) holds \(reader.signal), not \(store.signal); replayed as \(reader.signal)")
            }
            var segment = Segment(area: store.area, signal: store.signal, sequence: sequence, createdNanos: reader.createdNanos)
            while let entry = reader.next() {
                switch entry {
                case .frame(let frame): segment.records += frame.records
                case .damaged(let damage): segment.records += damage.records ?? 0
                }
            }
            segment.progress = SegmentProgress.read(store.path(sequence, "progress"))
            segment.progress.records = min(segment.progress.records, segment.records)
            segments[sequence] = segment
        }
        return (segments, maxSequence)
    }

    func store(_ signal: TelemetrySignal, _ area: SpillArea = .spilled) -> AreaStore {
        stores[(SpillArea.allCases.firstIndex(of: area)!) * TelemetrySignal.allCases.count + signal.index]
    }

    /// Records the pipeline keeps on disk now and has not delivered: the spilled and rejected areas.
    func recordsOnDisk(_ signal: TelemetrySignal) -> Int {
        recordsOnDisk(signal, .spilled) + recordsOnDisk(signal, .rejected)
    }

    func recordsOnDisk(_ signal: TelemetrySignal, _ area: SpillArea) -> Int {
        store(signal, area).state.withLock { $0.segments.values.reduce(0) { $0 + $1.unacknowledged } }
    }

    /// Writes one batch as a frame of `area`; returns the segment's name (``SpillLayout/segmentName(_:_:_:)``).
    func append(_ batch: ExportBatch, to area: SpillArea = .spilled) throws(SegmentWriter.Failure) -> String {
        try appendFrame(batch, to: area).name
    }

    /// Writes one batch to the rejected or refused area, with the collector's answer beside it
    /// in `<sequence>.rejections` (one JSON object per frame: offset, batch, records, status, kind, message).
    func keep(_ batch: ExportBatch, in area: SpillArea, status: Int?, kind: ExportFailureKind, message: String) throws(SegmentWriter
        .Failure) -> String
    {
        let (name, placement) = try appendFrame(batch, to: area)
        SpillLayout.appendLine(
            store(batch.signal, area).path(placement.segment, "rejections"),
            SpillLayout.rejectionLine(offset: placement.offset, batch: batch, status: status, kind: kind, message: message))
        return name
    }

    private func appendFrame(_ batch: ExportBatch, to area: SpillArea) throws(SegmentWriter.Failure) -> (
        name: String, placement: SegmentWriter.Placement
    ) {
        let store = self.store(batch.signal, area)
        return try store.state.withLock { (state) throws(SegmentWriter.Failure) -> (String, SegmentWriter.Placement) in
            // After close() the directory's lock is gone: nothing more may be written.
            guard !isClosed.load(ordering: .acquiring) else { throw SegmentWriter.Failure(errno: ESHUTDOWN) }
            if state.writer == nil {
                state.writer = try SegmentWriter(
                    directory: store.directory, signal: batch.signal, firstSegment: state.nextSequence, configuration: configuration,
                    rejectedArea: area != .spilled)
            }
            let writer = state.writer!
            let placement: SegmentWriter.Placement
            do throws(SegmentWriter.Failure) {
                placement = try writer.append(batch)
            } catch {
                lost(error, store: store, state: &state)
                throw error
            }
            state.segments[
                placement.segment,
                default: Segment(
                    area: area, signal: batch.signal, sequence: placement.segment, createdNanos: nowUnixNano())
            ].records += batch.recordCount
            state.nextSequence = writer.segmentSequence
            return (SpillLayout.segmentName(area, batch.signal, placement.segment), placement)
        }
    }

    private func lost(_ error: SegmentWriter.Failure, store: AreaStore, state: inout AreaStore.State) {
        guard error.lostRecords > 0 else { return }
        state.segments[error.lostSegment]?.records -= error.lostRecords
        guard store.area.holdsRecords else { return }
        onLost.withLock { $0 }?(store.signal, store.area, error.lostRecords, error.isDiskFull ? .diskFull : .spillFailed)
    }

    /// Closes the segment being written in `area`, so replay can take it.
    func sealOpenSegment(_ signal: TelemetrySignal, _ area: SpillArea = .spilled) {
        let store = self.store(signal, area)
        store.state.withLock { state in
            guard let writer = state.writer, state.segments[writer.segmentSequence] != nil else { return }
            do throws(SegmentWriter.Failure) {
                try writer.rotate()
            } catch {
                lost(error, store: store, state: &state)
            }
            state.nextSequence = writer.segmentSequence
        }
    }

    /// Seals every open segment (shutdown), whatever the durability policy.
    func sealAll() {
        for store in stores { sealOpenSegment(store.signal, store.area) }
    }

    /// Seals everything and releases the directory's lock. The store must not be used afterwards.
    func close() {
        guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        sealAll()
        for store in stores { store.state.withLock { $0.writer = nil } }
        lock.withLock { $0 = nil }
    }

    /// Sealed segments of `area` (not the one being written), in replay order.
    func sealedSegments(_ signal: TelemetrySignal, _ area: SpillArea = .spilled) -> [Segment] {
        store(signal, area).state.withLock { state in
            let open = state.writer?.segmentSequence
            let sealed = state.segments.values.filter { $0.sequence != open }.sorted { $0.sequence < $1.sequence }
            return configuration.replayNewestFirst ? sealed.reversed() : sealed
        }
    }

    func path(_ signal: TelemetrySignal, _ area: SpillArea, _ sequence: UInt64, _ suffix: String = "spill") -> String {
        store(signal, area).path(sequence, suffix)
    }

    /// Notes replay progress inside a segment (its side file is replaced atomically).
    func acknowledge(_ segment: Segment, _ progress: SegmentProgress) {
        let store = self.store(segment.signal, segment.area)
        let known = store.state.withLock { state -> Bool in
            // Deleted meanwhile (retention), or nothing new to note.
            guard let current = state.segments[segment.sequence], current.progress != progress else { return false }
            state.segments[segment.sequence]?.progress = progress
            return true
        }
        if known { progress.write(store.path(segment.sequence, "progress")) }
    }

    /// Takes a replayed segment out of the books: deleted, or renamed `.damaged` when it held
    /// damage (its intact frames were delivered; the damage is kept for inspection). Returns
    /// the records in it that were never acknowledged (lost in damage whose count was unknown).
    @discardableResult
    func finish(_ segment: Segment, quarantine: Bool) -> Int {
        let store = self.store(segment.signal, segment.area)
        let removed = store.state.withLock { $0.segments.removeValue(forKey: segment.sequence) }
        if quarantine {
            rename(store.path(segment.sequence, "spill"), store.path(segment.sequence, "damaged"))
        } else {
            unlink(store.path(segment.sequence, "spill"))
            unlink(store.path(segment.sequence, "rejections"))
        }
        unlink(store.path(segment.sequence, "progress"))
        return removed.map { max(0, $0.unacknowledged) } ?? 0
    }

    /// Deletes whole oldest files while the signal's bytes (all areas) exceed `maxBytes`, and
    /// files older than `maxAge`. Returns the segments deleted with their unacknowledged records
    /// (0 for refused copies and quarantined files: those records were counted already).
    func enforceRetention(_ signal: TelemetrySignal) -> [(segment: String, area: SpillArea, records: Int)] {
        struct Candidate {
            var area: SpillArea
            var sequence: UInt64
            var suffix: String
            var created: UInt64
            var bytes: Int
        }
        var candidates: [Candidate] = []
        var total = 0
        let now = nowUnixNano()
        for area in SpillArea.allCases {
            let store = self.store(signal, area)
            let (open, books) = store.state.withLock { ($0.writer?.segmentSequence, $0.segments) }
            for name in SpillLayout.list(store.directory) {
                let path = store.directory + "/" + name
                let bytes = SpillLayout.size(path)
                total += bytes
                guard let (sequence, suffix) = SpillLayout.parse(name), sequence != open || suffix == "damaged",
                    suffix == "spill" || suffix == "damaged"
                else { continue }
                let created = suffix == "spill" ? books[sequence]?.createdNanos : nil
                candidates.append(
                    Candidate(
                        area: area, sequence: sequence, suffix: suffix, created: created ?? SpillLayout.modificationNanos(path) ?? now,
                        bytes: bytes))
            }
        }
        candidates.sort { ($0.created, $0.sequence) < ($1.created, $1.sequence) }
        let maxAge = UInt64(clamping: configuration.maxAge.nanoseconds)
        var deleted: [(String, SpillArea, Int)] = []
        for candidate in candidates {
            let tooOld = now > candidate.created && now - candidate.created > maxAge
            guard total > configuration.maxBytes || tooOld else { break }
            let store = self.store(signal, candidate.area)
            var records = 0
            if candidate.suffix == "spill" {
                let removed = store.state.withLock { $0.segments.removeValue(forKey: candidate.sequence) }
                records = candidate.area.holdsRecords ? max(0, removed?.unacknowledged ?? 0) : 0
            }
            for suffix in [candidate.suffix, "progress", "rejections"] { unlink(store.path(candidate.sequence, suffix)) }
            total -= candidate.bytes
            deleted.append(
                (SpillLayout.segmentName(candidate.area, signal, candidate.sequence) + "." + candidate.suffix, candidate.area, records))
        }
        return deleted
    }
}

/// `text` as a JSON string literal.
package func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
