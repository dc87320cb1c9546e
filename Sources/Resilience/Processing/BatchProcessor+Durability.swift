#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Emits on a ``ExportRoute/Durability-swift.enum/machineCrash(window:timeout:)`` route: the
/// record is written, then the emit waits for the group commit (``RingSyncer``) that covers it.
extension BatchProcessor {
    /// An emit on a `machineCrash` route: written, then waiting for the sync that covers it.
    @inline(never)
    func submitDurably(_ record: UnsafeRawBufferPointer, type: Int32, _ syncer: RingSyncer, _ timeout: UInt64) -> EmitResult {
        var end = ring.writeReturningEnd(type: type, from: record.baseAddress!, length: record.count)
        if end == 0 {
            // Full, or too large: the ordinary path decides; once written, the tail is past the record.
            let result = write(record, type: type)
            guard case .queued = result else { return result }
            end = ring.tailPosition
        }
        if syncer.waitDurable(end: end, timeoutNanoseconds: timeout) { return .queued }
        let message =
            "the record was not synced to disk within \(Duration.nanoseconds(Int64(clamping: timeout))): it is queued and will be "
            + "exported, but a machine crash before the next sync would lose it"
        return .failed(ResilienceError(code: .spillFailed, message: message))
    }

    /// The group commit of the `machineCrash` routes (with a file-backed ring): the syncer, with the
    /// smallest of their windows, and per route index (0: the default route) its timeout or `nil`.
    static func groupCommit(ring: Ring, routes: [ExportRoute]) -> (RingSyncer?, [UInt64?]) {
        var windows: [Duration] = []
        let timeouts: [UInt64?] =
            [nil]
            + routes.map { route in
                guard ring.isFileBacked, case .machineCrash(let window, let timeout) = route.durability else { return nil }
                windows.append(window)
                return UInt64(clamping: timeout.nanoseconds)
            }
        let tracing = getenv("SPILLWAY_TEST_SYNC_TRACE").map { String(cString: $0) == "1" } ?? false
        return (windows.min().map { RingSyncer(ring: ring, window: $0, tracing: tracing) }, timeouts)
    }
}
