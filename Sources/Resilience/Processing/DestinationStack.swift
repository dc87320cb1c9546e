import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Everything behind one destination, built from the bottom up: its part of the spill store,
/// the OTLP exporter (or the application's), the chain (measured → retry → breaker or pool →
/// stages → transport), the error-handling stage that books every outcome in the destination's
/// ledger, its export tasks and windows, and the replayer of its part of the store.
///
/// The pipeline has one for its own exporter and one per ``ExportDestination``; the parts are
/// the same, only the settings and the ledger differ. Thread-safety: immutable after `init`.
final class DestinationStack: Sendable {
    /// The destination's name; `nil` for the pipeline's own exporter.
    let name: String?
    let ledger: Ledger
    let store: SpillStore?
    let windows: ExportWindows
    let tasks: ExportTasks
    let replayer: Replayer?
    /// Ends the retry back-offs at shutdown; only with a spill store, which keeps what still fails.
    let cutoff: RetryCutoff?
    /// The exporter at the end of the chain.
    let exporter: any TelemetryExporter
    /// Set when the stack built its own OTLP exporter: ``TelemetryPipeline/reconfigure(_:)`` can replace it.
    let switchable: SwitchableExporter?
    /// The collector pool's breakers, when the exporter is a pool: they outlive its exporters.
    let pool: (any CollectorRouting)?
    /// Closes the breaker (or every breaker of the pool).
    let resetBreaker: @Sendable () -> Void
    /// The breaker's state (the pool's as one), for stats and health.
    let breaker: (@Sendable () -> CircuitBreakerSnapshot)?
    /// Each collector of the pool, for stats.
    let collectors: (@Sendable () -> [CollectorStatus])?

    /// The settings a stack is built from: the pipeline's for its own exporter, a destination's otherwise.
    struct Settings {
        var name: String?
        var exporter: OTLPExporterConfiguration
        var retry: ExportRetryPolicy?
        var circuitBreaker: CircuitBreakerPolicy?
        var spill: SpillConfiguration?
    }

    init<C: Clock>(
        _ settings: Settings, configuration: PipelineConfiguration, exporter custom: (any TelemetryExporter)?, ledger: Ledger,
        logger: Logger, clock: C
    ) throws(ConfigurationError) where C.Duration == Duration {
        name = settings.name
        self.ledger = ledger
        let batching = configuration.processor == .batch

        // The failure destination: the spill store, with what it already holds counted as recovered.
        var store: SpillStore?
        if let spill = settings.spill, batching {
            // A destination's part lives in <directory>/destinations/<name>: the parent first.
            if let name = settings.name { _ = mkdir(String(spill.directory.dropLast(name.utf8.count + 1)), 0o700) }
            let opened = try SpillStore(configuration: spill, logger: logger)
            for signal in TelemetrySignal.allCases { ledger.recovered(signal, opened.recordsOnDisk(signal)) }
            opened.onLost.withLock {
                $0 = { signal, area, records, reason in ledger.lostAfterSpill(signal, area: area, records: records, reason) }
            }
            store = opened
        }
        self.store = store

        // The chain: error handling → measured → retry → breaker → custom stages → transport → exporter.
        // The transport stage feeds each signal's export window, which the processor reads.
        // Metrics go one request at a time, in order (``MetricReader``): a fixed window of 1.
        var metricsWindow = BatchConfiguration.logsDefault
        (metricsWindow.maxConcurrentExports, metricsWindow.adaptiveConcurrency) = (1, false)
        let windows = ExportWindows(
            traces: ExportWindow(configuration.traces), logs: ExportWindow(configuration.logs), metrics: ExportWindow(metricsWindow))
        self.windows = windows
        // A collector pool has a breaker per endpoint, which replaces the one breaker.
        let pool =
            custom == nil
            ? settings.exporter.pool.map { pool -> any CollectorRouting in
                CollectorPool(pool, policy: settings.circuitBreaker ?? CircuitBreakerPolicy(), clock: clock)
            } : nil
        self.pool = pool
        if let custom {
            exporter = custom
            switchable = nil
        } else {
            let built = SwitchableExporter(try makeOTLPExporter(settings.exporter, pool: pool))
            exporter = built
            switchable = built
        }
        // With a spill store, a misconfiguration (401, 403, 404, …) opens the breaker at once:
        // batches then wait on disk instead of being refused one by one.
        let built = ExporterChain.build(
            wrapping: TransportRecorder(next: exporter, counters: ledger.exports, windows: windows), retry: settings.retry,
            circuitBreaker: pool == nil ? settings.circuitBreaker : nil, opensOnMisconfiguration: store != nil,
            stages: configuration.exportStages, measured: configuration.selfMetrics, metricsFactory: configuration.metricsFactory,
            instance: settings.name ?? "0", clock: clock)
        if let pool {
            resetBreaker = { pool.reset() }
            breaker = { pool.snapshot() }
            collectors = { pool.statuses() }
        } else {
            resetBreaker = built.resetBreaker
            breaker = built.breaker
            collectors = nil
        }
        ledger.reporter.exporterName = built.exporter.name
        let fallbackDelay = settings.retry?.maximumDelay ?? .seconds(1)
        let breaker = self.breaker
        let hold = MemoryHold(
            holds: batching, delay: { breaker?().reopensIn ?? fallbackDelay }, sleep: { try await clock.sleep(for: $0) })
        let cutoff = store.map { _ in RetryCutoff() }
        self.cutoff = cutoff
        var chain: any TelemetryExporter = ErrorHandlingExporter(
            wrapping: built.exporter, ledger: ledger, destination: store, hold: hold, cutoff: cutoff)
        if let pool, pool.mode == .balanceByTrace { chain = TraceAffineSplitter(next: chain, pool: pool) }
        let tasks = ExportTasks(chain: chain)
        self.tasks = tasks
        if let store {
            // Over a balance-by-trace pool, frames are cut by trace as live batches are.
            var split: (@Sendable (ExportBatch) -> [ExportBatch])?
            if let pool, pool.mode == .balanceByTrace { split = { batch in TraceRouting.parts(of: batch) { pool.preferred(for: $0) } } }
            let replayer = Replayer(
                store: store, chain: built.exporter, ledger: ledger, breaker: breaker, executor: tasks.executor, logger: logger,
                split: split, cutoff: cutoff)
            replayer.start()
            self.replayer = replayer
        } else {
            self.replayer = nil
        }
    }

    /// Stops the replayer, closes the store and stops the executor: a pipeline whose start
    /// failed after this stack was built.
    func close() {
        replayer?.stop()
        store?.close()
        tasks.executor.stop()
    }

    /// A new OTLP exporter for `configuration`, to ``install(_:)`` in place of the running one;
    /// `nil` when the stack uses the application's exporter. Opens no connection.
    func makeReplacement(_ configuration: OTLPExporterConfiguration) throws(ConfigurationError) -> (any TelemetryExporter)? {
        guard switchable != nil else { return nil }
        return try makeOTLPExporter(configuration, pool: pool)
    }

    /// `replacement` takes every export attempt that starts from now on; attempts under way
    /// finish on the old exporter, which closes after its last one.
    func install(_ replacement: any TelemetryExporter) async {
        await switchable?.replace(with: replacement)
    }
}
