internal import CRingBuffer

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The ring file of a spill directory (`<directory>/ring`, FORMAT.md "The ring file"): opened, or
/// created, when the pipeline starts, with what an earlier process left in it.
///
/// A ring file that holds records from a process that died is resumed: its committed records stay
/// where they are and are the first the drain thread reads; records claimed and never committed
/// are skipped and counted. A file that does not check out (a foreign or damaged file, one cut
/// short, one written before the machine restarted) is renamed aside (`ring.<time>.damaged` or
/// `.stale`) with its journal, reported, and a new ring is made; it is never read as records.
package enum RingFile {
    /// The ring and what opening it found.
    struct Opened {
        let ring: Ring
        let journal: RingJournal
        /// Scopes of the earlier process, by index: register them first, at the same indices
        /// (the journal names them already).
        let scopes: [(name: String, version: String?)]
        /// A recovered record named a scope the journal does not: register ``placeholderScope``
        /// right after ``scopes``.
        let needsPlaceholder: Bool
        let recovery: PipelineStats.RingRecovery
    }

    /// The scope of recovered records whose scope the journal does not name.
    static let placeholderScope = "spillway.recovered"

    package static func path(directory: String) -> String { directory + "/ring" }
    static func journalPath(directory: String) -> String { directory + "/ring.names" }

    /// Opens `<directory>/ring`, creating a ring of `capacity` bytes when there is none (or none
    /// that can be trusted). `routes` are this process's route names (index 0: the default route).
    /// - Throws: ``ResilienceError`` (`spillFailed`, `diskFull`) when no ring file can be made.
    static func open(directory: String, capacity: Int, routes: [String?]) throws(ResilienceError) -> Opened {
        let path = path(directory: directory)
        let journalPath = journalPath(directory: directory)
        var setAside: String?
        for _ in 0..<2 {
            let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw failure("cannot open \(path)", errno) }
            let old = RingJournal.read(path: journalPath)
            var renumbering = Renumbering(old: old, routes: routes)
            var recovery = crb_recovery_t()
            var ring: OpaquePointer?
            var boot = bootID()
            let rc = withUnsafeMutablePointer(to: &renumbering) { context in
                crb_open_file(fd, capacity, &boot.0, Renumbering.callback, context, &recovery, &ring)
            }
            switch rc {
            case 0:
                let ring = Ring(file: ring!, fileDescriptor: fd)
                let journal = try RingJournal(path: journalPath, fresh: recovery.created != 0)
                journal.appendRoutes(routes)
                return Opened(
                    ring: ring, journal: journal, scopes: recovery.created != 0 ? [] : old.scopes,
                    needsPlaceholder: renumbering.needsPlaceholder,
                    recovery: PipelineStats.RingRecovery(
                        path: path, capacity: ring.capacity, generation: Int(recovery.generation),
                        recovered: renumbering.committed, skipped: renumbering.uncommitted, skippedBytes: Int(recovery.skipped_bytes),
                        setAside: setAside, afterReboot: recovery.after_reboot != 0))
            case -EBADMSG, -ESTALE:
                close(fd)
                let why = rc == -ESTALE ? "stale" : "damaged"
                let aside = "\(directory)/ring.\(time(nil)).\(why)"
                guard rename(path, aside) == 0 else { throw failure("cannot rename \(path) aside", errno) }
                _ = rename(journalPath, aside + ".names")
                setAside =
                    aside + (rc == -ESTALE ? " (written before the machine restarted)" : " (not a ring file this version can read)")
            default:
                close(fd)
                // A new file that could not be sized: leave no empty ring file behind.
                var st = stat()
                if stat(path, &st) == 0 && st.st_size == 0 { unlink(path) }
                throw failure("cannot map \(path) (\(capacity) bytes)", -rc)
            }
        }
        throw ResilienceError(code: .spillFailed, message: "cannot create \(path): a new ring file did not check out")
    }

    /// Deletes the ring file and its journal (a clean shutdown: every record was released).
    static func remove(directory: String) {
        unlink(path(directory: directory))
        unlink(journalPath(directory: directory))
    }

    private static func failure(_ what: String, _ code: Int32) -> ResilienceError {
        ResilienceError(code: code == ENOSPC ? .diskFull : .spillFailed, message: "\(what): \(String(cString: strerror(code)))")
    }

    /// The kernel's boot id (16 bytes); zeros where it cannot be read. `SPILLWAY_TEST_BOOT_ID` stands
    /// in for it in the crash tests: a process that starts "after a reboot".
    static func bootID() -> (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)
    {
        var id = [UInt8](repeating: 0, count: 16)
        if let text = getenv("SPILLWAY_TEST_BOOT_ID").map({ String(cString: $0) }) {
            // The crash tests' stand-in for a restarted machine: another boot id.
            for (i, byte) in text.utf8.prefix(16).enumerated() { id[i] = byte }
        } else if let file = fopen("/proc/sys/kernel/random/boot_id", "r") {
            defer { fclose(file) }
            var line = [UInt8](repeating: 0, count: 64)
            let n = fread(&line, 1, 63, file)
            if n > 0 {
                let hex = String(decoding: line[0..<n], as: UTF8.self).filter(\.isHexDigit)
                var index = hex.startIndex
                for i in 0..<16 where hex.distance(from: index, to: hex.endIndex) >= 2 {
                    id[i] = UInt8(hex[index..<hex.index(index, offsetBy: 2)], radix: 16) ?? 0
                    index = hex.index(index, offsetBy: 2)
                }
            }
        }
        return (id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9], id[10], id[11], id[12], id[13], id[14], id[15])
    }
}

/// Recovery's view of each record type found in an old ring: counted per signal, its route
/// renumbered by name to this process's routes (a route that is gone: the default route), its
/// scope kept (the old scopes are registered again at their indices) or, when the journal does not
/// name it, given a placeholder scope after them.
private struct Renumbering {
    let old: RingJournal.Contents
    let routeIndex: [Int]
    var committed = SignalTable<Int>(traces: 0, logs: 0, metrics: 0)
    var uncommitted = SignalTable<Int>(traces: 0, logs: 0, metrics: 0)
    var needsPlaceholder = false

    init(old: RingJournal.Contents, routes: [String?]) {
        self.old = old
        routeIndex = old.routes.map { name in name.flatMap { routes.firstIndex(of: $0) } ?? 0 }
    }

    /// The recovery walk's callback (`crb_open_file`, `crb_inspect_file`), its context a `Renumbering`.
    static let callback: crb_recovery_fn = { type, committed, payload, length, context in
        context!.assumingMemoryBound(to: Renumbering.self).pointee.type(
            of: type, committed: committed != 0, UnsafeRawBufferPointer(start: payload, count: Int(length)))
    }

    mutating func type(of type: Int32, committed isCommitted: Bool, _ payload: UnsafeRawBufferPointer) -> Int32 {
        let route = type.recordRoute < routeIndex.count ? routeIndex[type.recordRoute] : 0
        if let signal = type.relocatedBatchSignal {
            // A whole request an earlier process relocated: its records, counted from its payload.
            guard isCommitted, payload.count >= 4 else {
                uncommitted[signal] += 1
                return type
            }
            committed[signal] += Int(UInt32(littleEndian: payload.loadUnaligned(as: UInt32.self)))
            return relocatedBatchType(signal: signal, route: route)
        }
        guard type.recordSignal == 1 || type.recordSignal == 2 else {
            // Not a record this pipeline writes: skipped (made padding), counted as a trace.
            uncommitted.traces += 1
            return -1
        }
        let signal: TelemetrySignal = type.recordSignal == 2 ? .logs : .traces
        if isCommitted { committed[signal] += 1 } else { uncommitted[signal] += 1 }
        var scope = type.recordScope
        if scope >= old.scopes.count {
            needsPlaceholder = true
            scope = old.scopes.count
        }
        return recordType(signal: signal, route: route, scope: scope)
    }
}

extension RingFile {
    /// What a ring file holds, read without changing it (`spillway inspect`, `spillway recover`).
    package struct Inspection: Sendable {
        package var path: String
        package var capacity: Int
        package var generation: Int
        /// Records committed and not yet delivered: what the next pipeline on the directory sends first.
        package var spans: Int
        package var logRecords: Int
        /// Records a producer claimed and never committed, and bytes after a claim whose header was never written.
        package var skippedRecords: Int
        package var skippedBytes: Int
        /// Written before the machine restarted: a pipeline sets it aside instead of reading it.
        package var isStale: Bool
    }

    /// Reads `<directory>/ring`; `nil` when there is none.
    /// - Throws: ``ResilienceError`` when the file exists but is not a ring file this version can read.
    package static func inspect(directory: String) throws(ResilienceError) -> Inspection? {
        let path = path(directory: directory)
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT { return nil }
        guard fd >= 0 else { throw failure("cannot open \(path)", errno) }
        defer { close(fd) }
        var counts = Renumbering(old: RingJournal.read(path: journalPath(directory: directory)), routes: [nil])
        var recovery = crb_recovery_t()
        var capacity: UInt64 = 0
        var boot = bootID()
        let rc = withUnsafeMutablePointer(to: &counts) { context in
            crb_inspect_file(fd, &boot.0, Renumbering.callback, context, &recovery, &capacity)
        }
        guard rc == 0 || rc == -ESTALE else {
            throw ResilienceError(
                code: .spillFailed,
                message: rc == -EBADMSG ? "\(path): not a ring file this version can read" : "\(path): \(String(cString: strerror(-rc)))")
        }
        return Inspection(
            path: path, capacity: Int(capacity), generation: Int(recovery.generation), spans: counts.committed.traces,
            logRecords: counts.committed.logs, skippedRecords: counts.uncommitted.traces + counts.uncommitted.logs,
            skippedBytes: Int(recovery.skipped_bytes), isStale: rc == -ESTALE)
    }
}
