import Logging
import Synchronization
import Glibc

/// What emitting code needs: the ring, the limits, the books, and where records go.
/// Shared by every ``Tracer``, ``TelemetryLogger`` and ``Span`` of one pipeline.
final class PipelineCore: @unchecked Sendable {
    let ring: Ring
    let limits: AttributeLimits
    let blockNanos: UInt64?
    let accepting = Atomic<Bool>(true)
    let traces = SignalCounters()
    let logs = SignalCounters()
    let exports = ExportCounters()
    let scopes = ScopeRegistry()
    let resource: [UInt8]
    let logger: Logger
    /// Where export tasks run: never the cooperative pool (see ``ExportExecutor``).
    let exportExecutor = ExportExecutor(name: "spillway-export")
    /// Set once at start, before any record is emitted.
    var processor: BatchProcessor?
    var simple: SimpleProcessor?
    /// Fixed at creation, read on every emit (a `let`: no exclusivity check, unlike `simple`).
    let usesSimpleProcessor: Bool
    private let reportedDrops = Mutex<Set<String>>([])

    init(configuration: PipelineConfiguration, logger: Logger) throws(ConfigurationError) {
        self.ring = try Ring(capacity: configuration.ringCapacity)
        self.limits = configuration.limits
        if case .block(let t) = configuration.overflowPolicy {
            self.blockNanos = UInt64(clamping: t.nanoseconds)
        } else {
            self.blockNanos = nil
        }
        self.resource = ResourceEncoding.encode(configuration)
        self.usesSimpleProcessor = configuration.processor == .simple
        self.logger = logger
    }

    @inline(__always)
    func counters(for type: Int32) -> SignalCounters {
        type >> 20 == Int32(TelemetrySignal.traces.rawValue) ? traces : logs
    }

    /// Hands one encoded record to the pipeline. Called on the producer's thread.
    @inline(__always)
    func submit(_ buffer: ScratchBuffer, type: Int32) -> EmitResult {
        guard accepting.load(ordering: .relaxed) else {
            return drop(type: type, .shutdown, detail: "the pipeline is shutting down")
        }
        if usesSimpleProcessor, let simple { return simple.export(buffer, type: type) }
        switch ring.tryWrite(type: type, from: buffer.base, length: buffer.count) {
        case .written:
            return .queued
        case .tooLarge:
            return drop(type: type, .recordTooLarge, detail: "a record of \(buffer.count) bytes exceeds the ring's maximum of \(ring.maximumRecordLength)")
        case .full:
            if let blockNanos, blockUntilWritten(buffer, type: type, nanoseconds: blockNanos) { return .queued }
            return drop(type: type, .ringFull, detail: "the ring (\(ring.capacity) bytes) is full")
        }
    }

    /// The `.block(upTo:)` policy: wake the drain thread, then retry with short sleeps.
    @inline(never)
    private func blockUntilWritten(_ buffer: ScratchBuffer, type: Int32, nanoseconds: UInt64) -> Bool {
        let deadline = monotonicNanos() &+ nanoseconds
        var pause: Int = 1_000
        while true {
            processor?.wake()
            var ts = timespec(tv_sec: 0, tv_nsec: pause)
            nanosleep(&ts, nil)
            if ring.tryWrite(type: type, from: buffer.base, length: buffer.count) == .written { return true }
            if !accepting.load(ordering: .relaxed) || monotonicNanos() >= deadline { return false }
            pause = min(pause * 2, 200_000)
        }
    }

    @inline(never)
    func drop(type: Int32, _ reason: DropReason, detail: String) -> EmitResult {
        counters(for: type).drop(reason, 1)
        if type >> 20 == 1 || type >> 20 == 2 { reportFirst(reason, signal: type >> 20 == 1 ? "traces" : "logs", detail: detail) }
        return .dropped(reason)
    }

    /// Logs the first drop of each kind; the stats count every one.
    func reportFirst(_ reason: DropReason, signal: String, detail: String) {
        let key = "\(signal)/\(reason)"
        let first = reportedDrops.withLock { $0.insert(key).inserted }
        if first {
            logger.warning("dropping \(signal) records (\(reason)): \(detail); further drops of this kind are only counted in stats()")
        }
    }

    func stats() -> PipelineStats {
        let lastSuccess = exports.lastSuccess.load(ordering: .relaxed)
        let lastFailure = exports.lastFailure.load(ordering: .relaxed)
        return PipelineStats(
            spans: traces.snapshot(), logs: logs.snapshot(),
            ringBytesInUse: ring.bytesInUse, ringCapacity: ring.capacity,
            exportAttempts: exports.attempts.load(ordering: .relaxed),
            exportSuccesses: exports.successes.load(ordering: .relaxed),
            exportFailures: exports.failures.load(ordering: .relaxed),
            lastSuccessTime: lastSuccess == 0 ? nil : lastSuccess,
            lastFailureTime: lastFailure == 0 ? nil : lastFailure,
            lastError: exports.lastError.withLock { $0 })
    }

    /// Sends one batch and keeps the books: exported, rejected (partial success) or failed.
    func export(_ batch: ExportBatch, with exporter: any TelemetryExporter) async -> Result<ExportResponse, any Error> {
        let counters = batch.signal == .traces ? traces : logs
        exports.attempts.add(1, ordering: .relaxed)
        do {
            let response = try await exporter.export(batch)
            exports.successes.add(1, ordering: .relaxed)
            exports.lastSuccess.store(nowUnixNano(), ordering: .relaxed)
            let rejected = min(max(response.rejectedRecords, 0), batch.recordCount)
            counters.exported.add(batch.recordCount - rejected, ordering: .relaxed)
            if rejected > 0 {
                counters.drop(.rejected, rejected)
                logger.warning("collector rejected \(rejected) of \(batch.recordCount) \(batch.signal) records: \(response.errorMessage)")
            }
            return .success(response)
        } catch {
            exports.failures.add(1, ordering: .relaxed)
            exports.lastFailure.store(nowUnixNano(), ordering: .relaxed)
            exports.lastError.withLock { $0 = "\(error)" }
            counters.drop(.exportFailed, batch.recordCount)
            logger.warning("export of \(batch.recordCount) \(batch.signal) records to \(exporter.name) failed; dropped (export_failed): \(error)")
            return .failure(error)
        }
    }
}
