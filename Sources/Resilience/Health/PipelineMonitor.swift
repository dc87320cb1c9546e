import Synchronization

/// Says what happened to every record: ``stats()`` and ``health(window:)`` on demand, and a
/// thread of its own that every 100 ms turns the intake drops counted since the last tick into
/// events for the handlers, refreshes the self-metrics and flushes the throttled log lines.
///
/// It reads the ledger, the processor's queue, the spill store's counts and the breaker's
/// snapshot; nothing it reads refers back to it. The thread holds the monitor only while it
/// ticks, so releasing the pipeline frees everything at once, on the releasing thread.
///
/// Thread-safety: safe from any thread.
final class PipelineMonitor: Sendable {
    private let ledger: Ledger
    private let dispatcher: ExportEventDispatcher
    private let processor: any RecordProcessor
    private let store: SpillStore?
    private let breaker: (@Sendable () -> CircuitBreakerSnapshot)?
    /// Each collector of a pool, when the exporter is one.
    private let collectors: (@Sendable () -> [CollectorStatus])?
    private let metrics: PipelineMetrics?
    private let windows: ExportWindows
    /// Each ``ExportDestination``'s own monitor (not started), by name.
    private let destinations: [String: PipelineMonitor]
    private let stopped = Atomic<Bool>(false)
    private let parker = ThreadParker()

    init(
        ledger: Ledger, dispatcher: ExportEventDispatcher, processor: any RecordProcessor, store: SpillStore?,
        breaker: (@Sendable () -> CircuitBreakerSnapshot)?, metrics: PipelineMetrics?, windows: ExportWindows,
        collectors: (@Sendable () -> [CollectorStatus])? = nil, destinations: [String: PipelineMonitor] = [:]
    ) {
        self.destinations = destinations
        self.collectors = collectors
        self.windows = windows
        self.ledger = ledger
        self.dispatcher = dispatcher
        self.processor = processor
        self.store = store
        self.breaker = breaker
        self.metrics = metrics
    }

    /// Starts the thread (every 100 ms) until ``stop()`` or until the monitor is released.
    func start() {
        let parker = self.parker
        startThread(name: "spillway-monitor") { [weak self] in
            func tickIfRunning() -> Bool {
                guard let monitor = self, !monitor.stopped.load(ordering: .relaxed) else { return false }
                monitor.tick()
                return true
            }
            while tickIfRunning() { parker.park(nanoseconds: 100_000_000) }
        }
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        parker.unpark()
    }

    /// Turns the intake drops counted since the last tick into events; refreshes the metrics.
    func tick() {
        let processor = self.processor
        ledger.reportIntakeDrops { Self.describe($0, processor: processor) }
        metrics?.update(stats())
        ledger.logThrottle.flush(force: false)
        for destination in destinations.values {
            destination.metrics?.update(destination.stats())
            destination.ledger.logThrottle.flush(force: false)
        }
    }

    private static func describe(_ reason: DropReason, processor: any RecordProcessor) -> (ExportFailureKind, ResilienceError) {
        switch reason {
        case .ringFull:
            return (
                .overflow, ResilienceError(code: .ringFull, message: "the ring (\(processor.queueUsage.capacity) bytes) was full")
            )
        case .recordTooLarge:
            return (
                .permanent,
                ResilienceError(
                    code: .recordTooLarge, message: "records larger than the ring's maximum of \(processor.maximumRecordLength) bytes")
            )
        default:
            return (
                .shutdown,
                ResilienceError(code: .shutDown, message: "emitted after shutdown began, or not exported by the shutdown deadline")
            )
        }
    }

    // MARK: Stats and health

    func stats() -> PipelineStats {
        let (traces, logs, exports) = (ledger.traces, ledger.logs, ledger.exports)
        let lastSuccess = exports.lastSuccess.load(ordering: .relaxed)
        let lastFailure = exports.lastFailure.load(ordering: .relaxed)
        let breaker = self.breaker?()
        func disk(_ signal: TelemetrySignal) -> (Int, Int) {
            guard let store else { return (0, 0) }
            return (store.recordsOnDisk(signal), store.recordsOnDisk(signal, .rejected))
        }
        let (tracesOnDisk, tracesRejected) = disk(.traces)
        let (logsOnDisk, logsRejected) = disk(.logs)
        let queue = processor.queueUsage
        var spans = traces.snapshot(onDisk: tracesOnDisk, rejectedOnDisk: tracesRejected)
        var logRecords = logs.snapshot(onDisk: logsOnDisk, rejectedOnDisk: logsRejected)
        (spans.exportWindow, spans.exportWindowPeak) = (windows.traces.limit, windows.traces.peak)
        (logRecords.exportWindow, logRecords.exportWindowPeak) = (windows.logs.limit, windows.logs.peak)
        let (metricsOnDisk, metricsRejected) = disk(.metrics)
        var metricPoints = ledger.metrics.snapshot(onDisk: metricsOnDisk, rejectedOnDisk: metricsRejected)
        (metricPoints.exportWindow, metricPoints.exportWindowPeak) = (windows.metrics.limit, windows.metrics.peak)
        var stats = PipelineStats(
            spans: spans, logs: logRecords,
            ringBytesInUse: queue.bytesInUse, ringCapacity: queue.capacity,
            exportAttempts: exports.attempts.load(ordering: .relaxed),
            exportSuccesses: exports.successes.load(ordering: .relaxed),
            exportFailures: exports.failures.load(ordering: .relaxed),
            retries: exports.retries.load(ordering: .relaxed),
            batchesHeldInMemory: exports.held.load(ordering: .relaxed),
            circuitBreakerState: breaker?.state, circuitBreakerTrips: breaker?.trips ?? 0,
            lastSuccessTime: lastSuccess == 0 ? nil : lastSuccess,
            lastFailureTime: lastFailure == 0 ? nil : lastFailure,
            lastError: exports.lastError.withLock { $0 },
            misconfiguration: breaker?.misconfiguration ?? exports.misconfiguration.withLock { $0 },
            handlerEvents: dispatcher.sent.load(ordering: .relaxed),
            handlerEventsLost: dispatcher.lost.load(ordering: .relaxed),
            handlerErrors: dispatcher.handlerErrors.load(ordering: .relaxed),
            handlerBatchesOmitted: dispatcher.batchesOmitted.load(ordering: .relaxed))
        stats.metrics = metricPoints
        stats.collectors = collectors?() ?? []
        stats.destinations = destinations.mapValues { $0.stats() }
        return stats
    }

    /// Whether the pipeline is delivering, by the rules of ``PipelineHealth``.
    func health(window: Duration) -> PipelineHealth {
        let exports = ledger.exports
        let now = monotonicNanos()
        let windowNanos = UInt64(clamping: window.nanoseconds)
        // A time stored after `now` was read (another thread, a moment later) is recent too.
        func recent(_ atomic: UInt64) -> Bool { atomic != 0 && (atomic >= now || now - atomic <= windowNanos) }
        var bad: [HealthReason] = []
        var weak: [HealthReason] = []
        if recent(exports.lastDropMonotonic.load(ordering: .relaxed)) { bad.append(.droppingRecords) }
        let snapshot = breaker?()
        if snapshot?.misconfiguration != nil || exports.misconfiguration.withLock({ $0 != nil }) { bad.append(.misconfigured) }
        switch snapshot?.state {
        case .open? where store != nil: weak.append(.spilling)
        case .open?: bad.append(.collectorDown)
        case .halfOpen?: weak.append(.probing)
        default: break
        }
        if snapshot?.state == .closed, let collectors = collectors?(), collectors.contains(where: { $0.circuitBreakerState != .closed }) {
            weak.append(.collectorUnavailable)
        }
        if recent(exports.lastRetryMonotonic.load(ordering: .relaxed)) { weak.append(.retrying) }
        if exports.held.load(ordering: .relaxed) > 0 { weak.append(.holdingBatches) }
        let queue = processor.queueUsage
        if queue.capacity > 0 && queue.bytesInUse * 2 >= queue.capacity { weak.append(.ringFilling) }
        if let store, TelemetrySignal.allCases.contains(where: { store.recordsOnDisk($0, .spilled) > 0 }) { weak.append(.backlog) }
        // A destination's trouble is the pipeline's: its records are the application's too.
        for destination in destinations.keys.sorted() {
            switch destinations[destination]!.health(window: window) {
            case .unhealthy(let reasons): bad += reasons.filter { !bad.contains($0) && !weak.contains($0) }
            case .degraded(let reasons): weak += reasons.filter { !bad.contains($0) && !weak.contains($0) }
            case .healthy: break
            }
        }
        if !bad.isEmpty { return .unhealthy(bad + weak) }
        if !weak.isEmpty { return .degraded(weak) }
        return .healthy
    }
}
