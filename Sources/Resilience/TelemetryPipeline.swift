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
///
/// Memory: a pipeline that is released stays in memory, with its ring, while a thread's idle
/// span buffer still names it; it is freed (off the emitting thread) when that thread's next
/// span goes to another pipeline, or when the thread ends.
public final class TelemetryPipeline: Sendable {
    // Built from the bottom up in `init`, each part from the ones below it: nothing refers back.
    private let ledger: Ledger
    private let dispatcher: ExportEventDispatcher
    /// The pipeline's own exporter, with its store, chain, tasks and replayer.
    private let main: DestinationStack
    /// One per ``PipelineConfiguration/destinations``, in order.
    private let destinations: [DestinationStack]
    private var store: SpillStore? { main.store }
    private var tasks: ExportTasks { main.tasks }
    private let processor: any RecordProcessor
    var batchProcessor: BatchProcessor? { processor as? BatchProcessor }
    private let intake: Intake
    /// The instrumentation scopes of the tracers and loggers handed out, numbered in order.
    private let scopes: ScopeRegistry
    let monitor: PipelineMonitor
    /// Collects the application's metric series and exports them through their routes' destinations.
    let metricReader: MetricReader
    /// The status endpoint's server, when configured: started last in `init` (its routes read
    /// the pipeline through a weak reference, so releasing the pipeline is not held up by it).
    let statusServer = Mutex<StatusServer?>(nil)
    let logger: Logger
    private let shutDown = Atomic<Bool>(false)
    /// The configuration in effect; ``reconfigure(_:)`` replaces it one at a time.
    private let running: Mutex<PipelineConfiguration>
    private let reconfiguring = AsyncSerialGate()
    /// With a spill directory: the ring file, and what was recovered from it at start.
    let ringFile: PipelineStats.RingRecovery?
    private let fileRing: Ring?

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

        // The pipeline's own exporter and each destination: store, chain, tasks, replayer.
        let main = try DestinationStack(
            .init(
                name: nil, exporter: configuration.exporter, retry: configuration.retry, circuitBreaker: configuration.circuitBreaker,
                spill: configuration.spill(for: nil)),
            configuration: configuration, exporter: exporter, ledger: ledger, logger: logger, clock: clock)
        var destinations: [DestinationStack] = []
        for destination in configuration.destinations {
            let books = Ledger(
                dispatcher: dispatcher, processor: configuration.processor, logger: logger,
                routeNames: [nil] + configuration.routes.map(\.name), destination: destination.name)
            do {
                destinations.append(
                    try DestinationStack(
                        .init(
                            name: destination.name, exporter: destination.exporter, retry: destination.retry,
                            circuitBreaker: destination.circuitBreaker, spill: configuration.spill(for: destination.name)),
                        configuration: configuration, exporter: nil, ledger: books, logger: logger, clock: clock))
            } catch {
                // What was started stops, and the stores' locks are released, before the error.
                for stack in [main] + destinations { stack.close() }
                dispatcher.stop()
                throw error
            }
        }
        self.main = main
        self.destinations = destinations
        let (store, tasks, windows) = (main.store, main.tasks, main.windows)

        // The ring, in the spill directory when there is one (its lock is held now), and the scopes its records name.
        let parts: RingParts?
        do {
            parts = batching ? try Self.makeRing(configuration, logger: logger) : nil
        } catch {
            for stack in [main] + destinations { stack.close() }
            dispatcher.stop()
            throw error
        }
        let ring = parts?.ring
        self.ringFile = parts?.file
        self.fileRing = parts?.file != nil ? ring : nil

        // The processor, then the intake that emitting code holds.
        let routes = RouteTable(configuration.routes)
        let scopes = parts?.scopes ?? ScopeRegistry()
        let resource = ResourceEncoding.encode(configuration)
        let processor: any RecordProcessor
        if let ring {
            processor = BatchProcessor(
                ring: ring, configuration: configuration, routes: routes, scopes: scopes, resource: resource, ledger: ledger, tasks: tasks,
                windows: windows, destination: store, destinations: destinations, logger: logger)
        } else {
            processor = SimpleProcessor(
                configuration: configuration, routes: routes, scopes: scopes, resource: resource, ledger: ledger, tasks: tasks)
        }
        self.processor = processor
        let metricReader = MetricReader(
            configuration: configuration.metrics, resource: resource, ledger: ledger, stacks: [main] + destinations, routes: routes)
        metricReader.start()
        self.metricReader = metricReader
        // With a machineCrash route every emit goes through the processor, which waits for the sync.
        self.intake = Intake(
            configuration: configuration, routes: routes, ledger: ledger, ring: (processor as? BatchProcessor)?.syncer == nil ? ring : nil,
            processor: processor)
        self.scopes = scopes

        let metrics =
            configuration.selfMetrics
            ? PipelineMetrics(processor: configuration.processor, factory: configuration.metricsFactory ?? MetricsSystem.factory) : nil
        // A destination's stats and health come from a monitor of its own books, which the
        // pipeline's monitor asks (it is not started: the pipeline's ticks for it).
        var destinationMonitors: [String: PipelineMonitor] = [:]
        for stack in destinations {
            destinationMonitors[stack.name ?? ""] = PipelineMonitor(
                ledger: stack.ledger, dispatcher: dispatcher, processor: processor, store: stack.store, breaker: stack.breaker,
                metrics: configuration.selfMetrics
                    ? PipelineMetrics(
                        processor: configuration.processor, factory: configuration.metricsFactory ?? MetricsSystem.factory,
                        destination: stack.name) : nil,
                windows: stack.windows, collectors: stack.collectors)
        }
        monitor = PipelineMonitor(
            ledger: ledger, dispatcher: dispatcher, processor: processor, store: store, breaker: main.breaker, metrics: metrics,
            windows: windows, collectors: main.collectors, destinations: destinationMonitors)
        monitor.start()
        if let endpoint = configuration.statusEndpoint { try startStatusServer(endpoint, executor: tasks.executor) }
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
    /// export-error handlers, the default one and those of each route. The same exporter settings
    /// of each ``PipelineConfiguration/destinations`` entry are live too (not which destinations
    /// there are, their pools, retry or breaker); a destination whose new exporter cannot be made
    /// refuses the whole configuration, before any exporter is replaced.
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
    /// resource (`service.name` and attributes), routes (other than their handlers), the set of
    /// destinations (names, pools, retry and breaker), retry policy,
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
        // Every new exporter is made before any is installed, so a refused one changes nothing.
        // Named TLS files are read again even when the settings are the same: a rotated certificate.
        var changes = [(main, "", old.exporter, new.exporter)]
        for (index, stack) in destinations.enumerated() {
            changes.append((stack, "destinations[\(index)].", old.destinations[index].exporter, new.destinations[index].exporter))
        }
        var replacements: [(DestinationStack, any TelemetryExporter)] = []
        for (stack, keyPrefix, was, now) in changes where now != was || now.namesTLSFiles {
            do throws(ConfigurationError) {
                if let replacement = try stack.makeReplacement(now) { replacements.append((stack, replacement)) }
            } catch {
                for (_, unused) in replacements { await unused.shutdown() }
                throw ConfigurationError(key: keyPrefix + error.key, value: error.value, allowed: error.allowed, source: error.source)
            }
        }
        for (stack, replacement) in replacements { await stack.install(replacement) }
        if new.traces != old.traces || new.logs != old.logs { processor.update(traces: new.traces, logs: new.logs) }
        var routeHandlers: [String: any ExportErrorHandler] = [:]
        for route in new.routes { if let handler = route.errorHandler { routeHandlers[route.name] = handler } }
        dispatcher.update(defaultHandler: new.exportErrorHandler, routeHandlers: routeHandlers)
        intake.applyLiveSwitches(new)
        running.withLock { $0 = new }
        ledger.misconfigured(nil)
        main.resetBreaker()
        for stack in destinations {
            stack.ledger.misconfigured(nil)
            stack.resetBreaker()
        }
        logger.info(
            "telemetry pipeline reconfigured",
            metadata: [
                "endpoint": "\(new.exporter.endpoint)", "sampler": "\(new.sampler)", "enabled": "\(new.isEnabled)"
            ])
    }

    /// The pipeline's metric series, for the swift-metrics back end (`SpillwayMetricsFactory`).
    package var metricRegistry: MetricRegistry { metricReader.registry }

    /// Collects the metric series now and queues the requests for export, as every export
    /// interval does; ``forceFlush()`` also waits for them.
    package func collectMetrics() { metricReader.collect() }

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
        var problems = ledger.checkBooks { signal in store?.recordsOnDisk(signal) ?? 0 }
        for stack in destinations {
            let store = stack.store
            problems += stack.ledger.checkBooks { signal in store?.recordsOnDisk(signal) ?? 0 }.map { "\(stack.name ?? ""): \($0)" }
        }
        return problems
    }

    /// Returns when everything emitted before the call has been exported, spilled or dropped —
    /// by the pipeline's exporter and by every ``ExportDestination`` its route names. While a
    /// collector is down without a spill store, that is when it comes back (batches wait in memory).
    public func forceFlush() async {
        await processor.forceFlush()
        await metricReader.flush()
    }

    /// Stops intake, drains the ring, exports what it can before `deadline`, and counts the rest
    /// as dropped (`shutdown`, reported to the handlers): retries under way and batches waiting
    /// in memory give up at the deadline. Calling it again returns the same kind of summary at once.
    ///
    /// With a spill store, "the rest" is spilled instead, retries do not wait out their back-off
    /// (a batch waiting for its retry is sent once more at once and spilled if that fails too),
    /// and exports waiting for an answer at the deadline are spilled: they are cancelled (the HTTP
    /// connection closes, the gRPC stream is reset). A custom ``TelemetryExporter`` that ignores
    /// cancellation gets 2 s more; a batch it still holds then is left in the ring file (`pending`
    /// in the summary, sent by the next start), nothing else.
    public func shutdown(deadline: ContinuousClock.Instant) async -> ShutdownSummary {
        guard !shutDown.exchange(true, ordering: .relaxed) else {
            return ShutdownSummary(stats: stats(), deadlineExceeded: false)
        }
        intake.close()
        for stack in [main] + destinations {
            stack.replayer?.stop()
            // What still fails is spilled, not held for a back-off's seconds (``RetryCutoff``).
            stack.cutoff?.cut()
        }
        // The metrics' last collection, as the specification's MeterProvider shutdown does.
        await metricReader.flush(before: deadline)
        metricReader.stop()
        let exceeded = await processor.shutdown(deadline: deadline)
        // Cancelled exports finish their books quickly; an exporter that ignores cancellation
        // gets its own timeout's worth, then is left to finish in the background.
        let grace = ContinuousClock.now + .seconds(2)
        let stacks = [main] + destinations
        while stacks.contains(where: { $0.tasks.running > 0 }) && ContinuousClock.now < max(deadline, grace) {
            if ContinuousClock.now >= deadline { for stack in stacks { stack.tasks.cancelAll() } }
            try? await Task.sleep(for: .milliseconds(2))
        }
        // A replayed frame under way is answered and acknowledged before the store closes and its
        // lock goes to the next pipeline or process, which would otherwise send it again.
        for stack in stacks { await stack.replayer?.finish(before: deadline) }
        metricReader.settleQueued()
        if let releaser = batchProcessor?.releaser, case let left = releaser.relocateAll(), left > 0 {
            logger.notice("shutdown: \(left) records of exports still under way are kept in the ring file for the next start")
        }
        // Every record released (delivered, spilled or dropped): the ring file has nothing for a
        // next process. Removed while the lock is still held, so no other process has opened it.
        if let fileRing, let spill = configuration.spill, fileRing.bytesInUse == 0 { RingFile.remove(directory: spill.directory) }
        // Make what is on disk durable and replayable: seal the open segments (fdatasync, rename
        // to .spill, directory fsync), whatever the durability policy,
        // and release the directory's lock, so the next process (or pipeline) can take it over.
        for stack in stacks { stack.store?.close() }
        monitor.tick()
        for stack in stacks { stack.ledger.logThrottle.flush(force: true) }
        // The status endpoint answers through the drain; it stops before the executor that its
        // PUT /config runs on.
        await statusServer.withLock { server in
            defer { server = nil }
            return server
        }?.shutDown()
        for stack in stacks {
            await stack.exporter.shutdown()
            stack.tasks.executor.stop()
        }
        return ShutdownSummary(stats: stats(), deadlineExceeded: exceeded)
    }

    deinit {
        statusServer.withLock { $0 }?.stop()  // stop() is idempotent
        metricReader.stop()
        intake.close()
        let stacks = [main] + destinations
        for stack in stacks { stack.replayer?.stop() }
        processor.abandon()
        for stack in stacks {
            stack.tasks.cancelAll()
            stack.store?.close()
        }
        monitor.stop()
        dispatcher.stop()
        for stack in stacks { stack.tasks.executor.stop() }
    }
}
