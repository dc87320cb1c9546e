import Glibc
import Logging
import Synchronization

/// The failure destination on disk: one segment writer per signal, the segments' books,
/// retention, and what the replayer needs.
///
/// Thread-safety: every method is safe from any thread; one lock per signal is held across a
/// write (the C writer is single-threaded).
final class SpillStore: Sendable {
    let configuration: SpillConfiguration
    let usesIoUring: Bool
    /// Told when records that an earlier append accepted were lost after all (an asynchronous
    /// write failed): the pipeline moves them from `spilled` to dropped and reports them.
    let onLost = Mutex<(@Sendable (TelemetrySignal, Int, DropReason) -> Void)?>(nil)
    private let stores: [SignalStore]  // index: signal - 1

    struct Segment: Sendable {
        var sequence: UInt64
        var records = 0
        /// Frames and records already acknowledged by replay (kept in `<seq>.progress`).
        var acknowledgedFrames = 0
        var acknowledgedRecords = 0
        var createdNanos: UInt64
    }

    final class SignalStore: Sendable {
        let signal: TelemetrySignal
        let directory: String
        struct State {
            var writer: SegmentWriter?
            var segments: [UInt64: Segment] = [:]
            var nextSequence: UInt64 = 1
        }
        let state: Mutex<State>

        init(signal: TelemetrySignal, directory: String) {
            self.signal = signal
            self.directory = directory
            self.state = Mutex(State())
        }

        func path(_ sequence: UInt64, _ suffix: String) -> String {
            let digits = String(sequence)
            return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + "." + suffix
        }
    }

    /// Opens (creating) `<directory>/traces` and `/logs`, recovers `.open` segments left by a
    /// crash, and counts the records already on disk (returned per signal).
    init(configuration: SpillConfiguration, logger: Logger) throws(ConfigurationError) {
        self.configuration = configuration
        mkdir(configuration.directory, 0o700)
        var stores: [SignalStore] = []
        var ioUring = true
        for signal in [TelemetrySignal.traces, .logs] {
            let store = SignalStore(signal: signal, directory: configuration.directory + "/" + signal.description)
            if mkdir(store.directory, 0o700) != 0 && errno != EEXIST {
                throw ConfigurationError(key: "spill.directory", value: configuration.directory, allowed: "a directory this process can create and write (\(String(cString: strerror(errno))))")
            }
            var maxSequence: UInt64 = 0
            for name in Self.list(store.directory) where name.hasSuffix(".open") {
                if let recovered = recoverSegment(path: store.directory + "/" + name) {
                    logger.notice("spill: recovered \(store.directory)/\(name): \(recovered.records) records kept, \(recovered.truncatedBytes) torn bytes cut")
                }
            }
            var segments: [UInt64: Segment] = [:]
            for name in Self.list(store.directory) where name.hasSuffix(".spill") {
                // Counting needs the headers only (CRCs still checked): no decompression at start-up.
                guard let reader = SegmentReader(path: store.directory + "/" + name, headersOnly: true) else { continue }
                var segment = Segment(sequence: reader.sequence, createdNanos: Self.modificationNanos(store.directory + "/" + name))
                loop: while true {
                    switch reader.next() {
                    case .frame(_, let records, _): segment.records += records
                    case .damaged(let records, _): segment.records += records
                    case .end: break loop
                    }
                }
                let progress = Self.readProgress(store.path(reader.sequence, "progress"))
                segment.acknowledgedFrames = progress.frames
                segment.acknowledgedRecords = progress.records
                segments[reader.sequence] = segment
                maxSequence = max(maxSequence, reader.sequence)
            }
            let writer: SegmentWriter
            do {
                writer = try SegmentWriter(directory: store.directory, signal: signal, firstSegment: maxSequence + 1, configuration: configuration)
            } catch {
                throw ConfigurationError(key: "spill.directory", value: configuration.directory, allowed: "a writable directory (\(error.message))")
            }
            ioUring = ioUring && writer.usesIoUring
            store.state.withLock { state in
                state.writer = writer
                state.segments = segments
                state.nextSequence = maxSequence + 1
            }
            stores.append(store)
        }
        self.stores = stores
        self.usesIoUring = ioUring
        if !ioUring {
            logger.notice("spill: io_uring is not available here (or SPILLWAY_IO=pwrite); writing with pwrite")
        }
    }

    func store(_ signal: TelemetrySignal) -> SignalStore { stores[Int(signal.rawValue) - 1] }

    /// Records on disk now and not yet acknowledged, per signal.
    func recordsOnDisk(_ signal: TelemetrySignal) -> Int {
        store(signal).state.withLock { $0.segments.values.reduce(0) { $0 + $1.records - $1.acknowledgedRecords } }
    }

    /// Writes one batch as a frame; returns the segment's file name.
    func append(_ batch: ExportBatch) throws(SegmentWriter.Failure) -> String {
        let store = self.store(batch.signal)
        return try store.state.withLock { (state) throws(SegmentWriter.Failure) -> String in
            guard let writer = state.writer else { throw SegmentWriter.Failure(errno: EBADF) }
            let sequence: UInt64
            do throws(SegmentWriter.Failure) {
                sequence = try writer.append(batch)
            } catch {
                lost(error, signal: batch.signal, state: &state)
                throw error
            }
            state.segments[sequence, default: Segment(sequence: sequence, createdNanos: nowUnixNano())].records += batch.recordCount
            state.nextSequence = writer.segmentSequence
            // `<signal>/<sequence>`: the file is `.open` now and `.spill` once the segment is sealed.
            let digits = String(sequence)
            return "\(batch.signal)/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits
        }
    }

    private func lost(_ error: SegmentWriter.Failure, signal: TelemetrySignal, state: inout SignalStore.State) {
        guard error.lostRecords > 0 else { return }
        state.segments[error.lostSegment]?.records -= error.lostRecords
        onLost.withLock { $0 }?(signal, error.lostRecords, error.isDiskFull ? .diskFull : .spillFailed)
    }

    /// Closes the segment being written, so replay can take it.
    func sealOpenSegment(_ signal: TelemetrySignal) {
        let store = self.store(signal)
        store.state.withLock { state in
            guard let writer = state.writer, state.segments[writer.segmentSequence] != nil else { return }
            do throws(SegmentWriter.Failure) {
                try writer.rotate()
            } catch {
                lost(error, signal: signal, state: &state)
            }
            state.nextSequence = writer.segmentSequence
        }
    }

    /// Sealed segments (not the one being written), in replay order.
    func sealedSegments(_ signal: TelemetrySignal) -> [Segment] {
        store(signal).state.withLock { state in
            let open = state.writer?.segmentSequence
            let sealed = state.segments.values.filter { $0.sequence != open }.sorted { $0.sequence < $1.sequence }
            return configuration.replayNewestFirst ? sealed.reversed() : sealed
        }
    }

    /// Notes replay progress inside a segment (the side file is replaced atomically).
    func acknowledge(_ signal: TelemetrySignal, segment: UInt64, frames: Int, records: Int) {
        let store = self.store(signal)
        let known = store.state.withLock { state -> Bool in
            guard state.segments[segment] != nil else { return false }  // deleted meanwhile (retention)
            state.segments[segment]?.acknowledgedFrames = frames
            state.segments[segment]?.acknowledgedRecords = records
            return true
        }
        guard known else { return }
        let path = store.path(segment, "progress")
        let text = Array("\(frames) \(records)\n".utf8)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        rename(temporary, path)
    }

    /// Deletes a segment (replayed, or over the retention limits) and its progress file.
    /// Returns the records in it that had not been acknowledged.
    @discardableResult
    func delete(_ signal: TelemetrySignal, segment: UInt64) -> Int {
        let store = self.store(signal)
        let removed = store.state.withLock { $0.segments.removeValue(forKey: segment) }
        unlink(store.path(segment, "spill"))
        unlink(store.path(segment, "progress"))
        return removed.map { $0.records - $0.acknowledgedRecords } ?? 0
    }

    /// Deletes whole oldest sealed segments while the signal's bytes exceed `maxBytes`, and
    /// segments older than `maxAge`. Returns (segment file, unacknowledged records) deleted.
    func enforceRetention(_ signal: TelemetrySignal) -> [(segment: String, records: Int)] {
        let store = self.store(signal)
        var deleted: [(String, Int)] = []
        let now = nowUnixNano()
        let maxAge = UInt64(clamping: configuration.maxAge.nanoseconds)
        var segments = store.state.withLock { state in
            let open = state.writer?.segmentSequence
            return state.segments.values.filter { $0.sequence != open }.sorted { $0.sequence < $1.sequence }
        }
        var total = Self.list(store.directory).reduce(0) { $0 + Self.size(store.directory + "/" + $1) }
        while let oldest = segments.first {
            let tooOld = now > oldest.createdNanos && now - oldest.createdNanos > maxAge
            guard total > configuration.maxBytes || tooOld else { break }
            total -= Self.size(store.path(oldest.sequence, "spill"))
            let records = delete(signal, segment: oldest.sequence)
            deleted.append((store.path(oldest.sequence, "spill").split(separator: "/").last.map(String.init) ?? "", records))
            segments.removeFirst()
        }
        return deleted
    }

    func path(_ signal: TelemetrySignal, segment: UInt64) -> String { store(signal).path(segment, "spill") }

    // MARK: Files

    static func list(_ directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func size(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    static func modificationNanos(_ path: String) -> UInt64 {
        var st = stat()
        guard stat(path, &st) == 0 else { return nowUnixNano() }
        return UInt64(st.st_mtim.tv_sec) * 1_000_000_000 + UInt64(st.st_mtim.tv_nsec)
    }

    static func readProgress(_ path: String) -> (frames: Int, records: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return (0, 0) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 63) }
        guard n > 0 else { return (0, 0) }
        let parts = String(decoding: buffer[..<n], as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count >= 2, let frames = Int(parts[0]), let records = Int(parts[1]) else { return (0, 0) }
        return (frames, records)
    }
}
