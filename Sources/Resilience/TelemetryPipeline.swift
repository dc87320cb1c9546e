import CoreMetrics
public import Logging
import Synchronization

/// The entry point: owns the ring, the processor and the exporter of one telemetry pipeline.
///
/// Create one at start, hand out ``tracer(scope:version:)`` and ``logger(scope:version:)``, and
/// call ``shutdown(deadline:)`` before the process ends: a process that ends through `shutdown`
/// loses nothing that reached the pipeline.
///
/// ```swift
/// let pipeline = try TelemetryPipeline(configuration: .fromEnvironment())
/// let tracer = pipeline.tracer(scope: "checkout")
/// let span = tracer.startSpan("GET /cart", kind: .server)
/// span.setAttribute("http.response.status_code", 200)
/// span.end()
/// _ = await pipeline.shutdown(deadline: .now + .seconds(5))
/// ```
///
/// Thread-safety: every method is safe from any thread. Emitting (spans, logs) never takes a
/// lock and allocates nothing in steady state; see ``Span`` and ``TelemetryLogger``.
public final class TelemetryPipeline: Sendable {
    // Built from the bottom up in `init`, each part from the ones below it: nothing refers back.
    private let ledger: Ledger
    private let dispatcher: ExportEventDispatcher
    private let store: SpillStore?
    private let tasks: ExportTasks
    private let windows: ExportWindows
    private let replayer: Replayer?
    private let processor: any RecordProcessor
    private let intake: Intake
    /// The instrumentation scopes of the tracers and loggers handed out, numbered in order.
    private let scopes: ScopeRegistry
    private let monitor: PipelineMonitor
    let logger: Logger
    private let exporter: any TelemetryExporter
    /// Set when the pipeline built its own OTLP exporter: ``reconfigure(_:)`` can then replace it.
    private let switchable: SwitchableExporter?
    /// The collector pool's breakers, when the exporter is a pool: they outlive its exporters.
    private let pool: (any CollectorRouting)?
    private let shutDown = Atomic<Bool>(false)
    /// The configuration in effect; ``reconfigure(_:)`` replaces it one at a time.
    private let running: Mutex<PipelineConfiguration>
    private let reconfiguring = AsyncSerialGate()
    /// Closes the circuit breaker: a new configuration deserves a request at once (and ends a
    /// misconfiguration: the rejected area is replayed).
    private let resetBreaker: @Sendable () -> Void

    /// Starts a pipeline: allocates and pre-faults the ring, starts the drain thread.
    ///
    /// The exporter is wrapped in the chain of ``ExporterChain`` built from the configuration
    /// (measured → retry → breaker → exporter), inside an ``ErrorHandlingExporter`` that reports
    /// to the configuration's handlers and, for the batch processor, holds batches in memory
    /// while the collector is unreachable. With a collector pool
    /// (``OTLPExporterConfiguration/pool``) each endpoint has its own breaker, with the
    /// configuration's policy, instead of the one breaker; in `balance-by-trace` mode each batch
    /// is first split by trace, each part a batch of its own for the chain.
    ///
    /// - Parameters:
    ///   - configuration: Validated first. - Default value: the OTel defaults.
    ///   - exporter: Where batches go, at the end of the chain. - Default value: an ``OTLPHTTPExporter``
    ///     (or ``OTLPGRPCExporter``) for `configuration.exporter`.
    ///   - logger: Where the pipeline reports problems (failed exports, first drops). - Default value: label `spillway`.
    /// - Throws: ``ConfigurationError`` for an invalid value, naming the key.
    public convenience init(
        configuration: PipelineConfiguration = PipelineConfiguration(), exporter: (any TelemetryExporter)? = nil,
        logger: Logger = Logger(label: "spillway")
    ) throws(ConfigurationError) {
        try self.init(configuration: configuration, exporter: exporter, logger: logger, clock: ContinuousClock())
    }

    /// Starts a pipeline whose retry, breaker and failure destination read time from `clock`
    /// (a ``ResilienceTesting`` `TestClock` in tests).
    public init<C: Clock>(
        configuration: PipelineConfiguration, exporter: (any TelemetryExporter)? = nil,
        logger: Logger = Logger(label: "spillway"), clock: C
    ) throws(ConfigurationError) where C.Duration == Duration {
        try configuration.validate()
        // A typo in a variable's name would otherwise be ignored without a word.
        for warning in ConfigurationLayer(environment: PipelineConfiguration.processEnvironment()).warnings {
            logger.warning("configuration: \(warning)")
        }
        let batching = configuration.processor == .batch
        // The ring first: it is the one part whose creation can fail after validation (mmap).
        let ring = batching ? try Ring(capacity: configuration.ringCapacity) : nil
        self.logger = logger
        self.running = Mutex(configuration)

        // The books, and the thread that tells the handlers.
        var routeHandlers: [String: any ExportErrorHandler] = [:]
        for route in configuration.routes { if let handler = route.errorHandler { routeHandlers[route.name] = handler } }
        let dispatcher = ExportEventDispatcher(
            defaultHandler: configuration.exportErrorHandler, routeHandlers: routeHandlers, logger: logger)
        let ledger = Ledger(
            dispatcher: dispatcher, processor: configuration.processor, logger: logger, routeNames: [nil] + configuration.routes.map(\.name)
        )
        self.dispatcher = dispatcher
        self.ledger = ledger

        // The failure destination: the spill store, with what it already holds counted as recovered.
        var store: SpillStore?
        if let spill = configuration.spill, batching {
            let opened = try SpillStore(configuration: spill, logger: logger)
            ledger.recovered(.traces, opened.recordsOnDisk(.traces))
            ledger.recovered(.logs, opened.recordsOnDisk(.logs))
            opened.onLost.withLock {
                $0 = { signal, area, records, reason in ledger.lostAfterSpill(signal, area: area, records: records, reason) }
            }
            store = opened
        }
        self.store = store

        // The chain: error handling → measured → retry → breaker → custom stages → transport → exporter.
        // The transport stage feeds each signal's export window, which the processor reads.
        let windows = ExportWindows(traces: ExportWindow(configuration.traces), logs: ExportWindow(configuration.logs))
        self.windows = windows
        let chosen: any TelemetryExporter
        // A collector pool has a breaker per endpoint, which replaces the pipeline's one.
        let pool =
            exporter == nil
            ? configuration.exporter.pool.map { pool -> any CollectorRouting in
                CollectorPool(pool, policy: configuration.circuitBreaker ?? CircuitBreakerPolicy(), clock: clock)
            } : nil
        self.pool = pool
        if let exporter {
            chosen = exporter
            switchable = nil
        } else {
            let built = SwitchableExporter(try makeOTLPExporter(configuration.exporter, pool: pool))
            chosen = built
            switchable = built
        }
        self.exporter = chosen
        // With a spill store, a misconfiguration (401, 403, 404, …) opens the breaker at once:
        // batches then wait on disk instead of being refused one by one.
        let built = ExporterChain.build(
            wrapping: TransportRecorder(next: chosen, counters: ledger.exports, windows: windows), retry: configuration.retry,
            circuitBreaker: pool == nil ? configuration.circuitBreaker : nil, opensOnMisconfiguration: store != nil,
            stages: configuration.exportStages, measured: configuration.selfMetrics, metricsFactory: configuration.metricsFactory,
            clock: clock)
        var poolSnapshot: (@Sendable () -> CircuitBreakerSnapshot)?
        var collectors: (@Sendable () -> [CollectorStatus])?
        if let pool {
            resetBreaker = { pool.reset() }
            poolSnapshot = { pool.snapshot() }
            collectors = { pool.statuses() }
        } else {
            resetBreaker = built.resetBreaker
        }
        ledger.reporter.exporterName = built.exporter.name
        let fallbackDelay = configuration.retry?.maximumDelay ?? .seconds(1)
        let breaker = poolSnapshot ?? built.breaker
        let hold = MemoryHold(
            holds: batching, delay: { breaker?().reopensIn ?? fallbackDelay }, sleep: { try await clock.sleep(for: $0) })
        var chain: any TelemetryExporter = ErrorHandlingExporter(wrapping: built.exporter, ledger: ledger, destination: store, hold: hold)
        if let pool, pool.mode == .balanceByTrace { chain = TraceAffineSplitter(next: chain, pool: pool) }
        let tasks = ExportTasks(chain: chain)
        self.tasks = tasks
        if let store {
            // Over a balance-by-trace pool, frames are cut by trace as live batches are.
            var split: (@Sendable (ExportBatch) -> [ExportBatch])?
            if let pool, pool.mode == .balanceByTrace { split = { batch in TraceRouting.parts(of: batch) { pool.preferred(for: $0) } } }
            let replayer = Replayer(
                store: store, chain: built.exporter, ledger: ledger, breaker: breaker, executor: tasks.executor, logger: logger,
                split: split)
            replayer.start()
            self.replayer = replayer
        } else {
            self.replayer = nil
        }

        // The processor, then the intake that emitting code holds.
        let routes = RouteTable(configuration.routes)
        let scopes = ScopeRegistry()
        let resource = ResourceEncoding.encode(configuration)
        let processor: any RecordProcessor
        if let ring {
            processor = BatchProcessor(
                ring: ring, configuration: configuration, routes: routes, scopes: scopes, resource: resource, ledger: ledger, tasks: tasks,
                windows: windows, destination: store, logger: logger)
        } else {
            processor = SimpleProcessor(
                configuration: configuration, routes: routes, scopes: scopes, resource: resource, ledger: ledger, tasks: tasks)
        }
        self.processor = processor
        self.intake = Intake(configuration: configuration, routes: routes, ledger: ledger, ring: ring, processor: processor)
        self.scopes = scopes

        let metrics =
            configuration.selfMetrics
            ? PipelineMetrics(processor: configuration.processor, factory: configuration.metricsFactory ?? MetricsSystem.factory) : nil
        monitor = PipelineMonitor(
            ledger: ledger, dispatcher: dispatcher, processor: processor, store: store, breaker: breaker, metrics: metrics,
            windows: windows, collectors: collectors)
        monitor.start()
    }

    /// A tracer for the instrumentation scope `scope` (the library or module that emits).
    public func tracer(scope: String, version: String? = nil) -> Tracer {
        let index = scopes.index(name: scope, version: version)
        return Tracer(
            intake: intake, recordType: recordType(signal: .traces, route: intake.routes.route(scope: scope), scope: index),
            routesBySpanName: intake.routes.routesBySpanName)
    }

    /// A logger for the instrumentation scope `scope`.
    public func logger(scope: String, version: String? = nil) -> TelemetryLogger {
        let index = scopes.index(name: scope, version: version)
        return TelemetryLogger(
            intake: intake, recordType: recordType(signal: .logs, route: intake.routes.route(scope: scope), scope: index),
            routesByEventName: intake.routes.routesByEventName)
    }

    /// The configuration in effect (the last one ``reconfigure(_:)`` accepted).
    public var configuration: PipelineConfiguration { running.withLock { $0 } }

    /// Applies a new configuration to the running pipeline, losing and duplicating nothing.
    ///
    /// Live (``ConfigurationKey/isLive``): the exporter's endpoints, headers, compression and
    /// timeout; batch size, schedule delay and export timeout of each signal; the sampler;
    /// ``PipelineConfiguration/isEnabled``; ``PipelineConfiguration/exceptionStackTraces``; and the
    /// export-error handlers, the default one and those of each route.
    ///
    /// A new exporter configuration builds a new OTLP exporter: export attempts already under way
    /// finish on the old one, and every attempt that starts afterwards — new batches, retries of
    /// earlier ones, replays from the spill store — goes to the new endpoint. The old exporter's
    /// connections close when its last attempt ends. When the exporter names TLS files, they are
    /// read again even if no setting changed: rotate a certificate or key on disk, then call
    /// `reconfigure` (new connections use the new files). New batch sizes apply from the next record
    /// drained; a batch being filled keeps its deadline.
    ///
    /// Everything else needs a restart, and a configuration that changes it is refused as a whole
    /// (nothing is applied): the ring capacity, overflow policy, processor, spill store, limits,
    /// resource (`service.name` and attributes), routes (other than their handlers), retry policy,
    /// circuit breaker, export stages and self-metrics.
    ///
    /// Calls are applied one at a time, in order. With a custom exporter (passed to `init`), the
    /// exporter settings are not used and their changes are ignored.
    ///
    /// - Throws: ``ConfigurationError`` for an invalid value, or for a change that needs a restart
    ///   (its `allowed` says so and gives the running value).
    public func reconfigure(_ new: PipelineConfiguration) async throws(ConfigurationError) {
        try new.validate()
        await reconfiguring.enter()
        defer { reconfiguring.leave() }
        let old = running.withLock { $0 }
        if let refused = old.restartOnlyChange(to: new) { throw refused }
        // Named TLS files are read again even when the settings are the same: a rotated certificate.
        if let switchable, new.exporter != old.exporter || new.exporter.namesTLSFiles {
            let replacement = try makeOTLPExporter(new.exporter, pool: pool)
            await switchable.replace(with: replacement)
        }
        if new.traces != old.traces || new.logs != old.logs { processor.update(traces: new.traces, logs: new.logs) }
        var routeHandlers: [String: any ExportErrorHandler] = [:]
        for route in new.routes { if let handler = route.errorHandler { routeHandlers[route.name] = handler } }
        dispatcher.update(defaultHandler: new.exportErrorHandler, routeHandlers: routeHandlers)
        intake.applyLiveSwitches(new)
        running.withLock { $0 = new }
        ledger.misconfigured(nil)
        resetBreaker()
        logger.info(
            "telemetry pipeline reconfigured",
            metadata: [
                "endpoint": "\(new.exporter.endpoint)", "sampler": "\(new.sampler)", "enabled": "\(new.isEnabled)"
            ])
    }

    /// A snapshot of the counts. Cheap; safe from any thread.
    public func stats() -> PipelineStats { monitor.stats() }

    /// Whether the pipeline is delivering, by the rules of ``PipelineHealth``.
    /// - Parameter window: How far back drops and retries count. - Default value: 60 s.
    public func health(window: Duration = .seconds(60)) -> PipelineHealth { monitor.health(window: window) }

    /// Every ``ExportFailureEvent`` of the pipeline — those of every route — from the first
    /// access on.
    ///
    /// The first access subscribes: events from before it are not kept (the handlers see those).
    /// One stream per pipeline, for one consumer. When the consumer falls behind, the stream keeps
    /// the newest 4096 events (the loss is counted in ``PipelineStats/handlerEventsLost``), and
    /// their batches add up to at most 8 MiB (later events come without theirs:
    /// ``ExportFailureEvent/isBatchOmitted``). It ends when the pipeline is released.
    public var exportFailures: AsyncStream<ExportFailureEvent> { dispatcher.stream }

    /// The books checked against the ledger's own count of records in memory
    /// (``Ledger/checkBooks(onDisk:)``): empty when they balance. Meaningful at rest (nothing
    /// being exported or replayed); for tests.
    package func unbalancedBooks() -> [String] {
        let store = self.store
        return ledger.checkBooks { signal in store?.recordsOnDisk(signal) ?? 0 }
    }

    /// Returns when everything emitted before the call has been exported or dropped.
    /// While the collector is down, that is when it comes back (batches wait in memory).
    public func forceFlush() async {
        await processor.forceFlush()
    }

    /// Stops intake, drains the ring, exports what it can before `deadline`, and counts the rest
    /// as dropped (`shutdown`, reported to the handlers): retries under way and batches waiting
    /// in memory give up at the deadline. Calling it again returns the same kind of summary at once.
    public func shutdown(deadline: ContinuousClock.Instant) async -> ShutdownSummary {
        guard !shutDown.exchange(true, ordering: .relaxed) else {
            return ShutdownSummary(stats: stats(), deadlineExceeded: false)
        }
        intake.close()
        replayer?.stop()
        let exceeded = await processor.shutdown(deadline: deadline)
        // Cancelled exports finish their books quickly; an exporter that ignores cancellation
        // gets its own timeout's worth, then is left to finish in the background.
        let grace = ContinuousClock.now + .seconds(2)
        while tasks.running > 0 && ContinuousClock.now < max(deadline, grace) {
            if ContinuousClock.now >= deadline { tasks.cancelAll() }
            try? await Task.sleep(for: .milliseconds(2))
        }
        // Make what is on disk durable and replayable: seal the open segments (fdatasync, rename
        // to .spill, directory fsync), whatever the durability policy,
        // and release the directory's lock, so the next process (or pipeline) can take it over.
        store?.close()
        monitor.tick()
        ledger.logThrottle.flush(force: true)
        await exporter.shutdown()
        tasks.executor.stop()
        return ShutdownSummary(stats: stats(), deadlineExceeded: exceeded)
    }

    deinit {
        intake.close()
        replayer?.stop()
        processor.abandon()
        tasks.cancelAll()
        store?.close()
        monitor.stop()
        dispatcher.stop()
        tasks.executor.stop()
    }
}

/// One holder at a time, in arrival order, for async callers (``TelemetryPipeline/reconfigure(_:)``).
final class AsyncSerialGate: Sendable {
    private let state = Mutex<(busy: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func enter() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.busy {
                    state.waiters.append(continuation)
                    return false
                }
                state.busy = true
                return true
            }
            if ready { continuation.resume() }
        }
    }

    func leave() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
