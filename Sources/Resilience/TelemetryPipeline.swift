import Logging
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
    let core: PipelineCore
    private let processor: BatchProcessor?
    private let exporter: any TelemetryExporter
    private let shutDown = Atomic<Bool>(false)

    /// Starts a pipeline: allocates and pre-faults the ring, starts the drain thread.
    ///
    /// - Parameters:
    ///   - configuration: Validated first. - Default value: the OTel defaults.
    ///   - exporter: Where batches go. - Default value: an ``OTLPHTTPExporter`` for `configuration.exporter`.
    ///   - logger: Where the pipeline reports problems (failed exports, first drops). - Default value: label `spillway`.
    /// - Throws: ``ConfigurationError`` for an invalid value, naming the key.
    public init(
        configuration: PipelineConfiguration = PipelineConfiguration(), exporter: (any TelemetryExporter)? = nil,
        logger: Logger = Logger(label: "spillway")
    ) throws(ConfigurationError) {
        try configuration.validate()
        let core = try PipelineCore(configuration: configuration, logger: logger)
        let chosen: any TelemetryExporter
        if let exporter { chosen = exporter } else { chosen = try OTLPHTTPExporter(configuration: configuration.exporter) }
        let exporter = chosen
        self.core = core
        self.exporter = exporter
        switch configuration.processor {
        case .batch:
            let processor = BatchProcessor(core: core, exporter: exporter, traces: configuration.traces, logs: configuration.logs)
            core.processor = processor
            self.processor = processor
            processor.start()
        case .simple:
            core.simple = SimpleProcessor(core: core, exporter: exporter)
            self.processor = nil
        }
    }

    /// A tracer for the instrumentation scope `scope` (the library or module that emits).
    public func tracer(scope: String, version: String? = nil) -> Tracer {
        Tracer(core: core, recordType: recordType(signal: .traces, scope: core.scopes.index(name: scope, version: version)))
    }

    /// A logger for the instrumentation scope `scope`.
    public func logger(scope: String, version: String? = nil) -> TelemetryLogger {
        TelemetryLogger(core: core, recordType: recordType(signal: .logs, scope: core.scopes.index(name: scope, version: version)))
    }

    /// A snapshot of the counts. Cheap; safe from any thread.
    public func stats() -> PipelineStats { core.stats() }

    /// Returns when everything emitted before the call has been exported or dropped.
    public func forceFlush() async {
        await processor?.forceFlush()
    }

    /// Stops intake, drains the ring, exports what it can before `deadline`, and counts the rest
    /// as dropped (`shutdown`). Calling it again returns the same kind of summary at once.
    public func shutdown(deadline: ContinuousClock.Instant) async -> ShutdownSummary {
        guard !shutDown.exchange(true, ordering: .relaxed) else {
            return ShutdownSummary(stats: stats(), deadlineExceeded: false)
        }
        core.accepting.store(false, ordering: .relaxed)
        var exceeded = false
        if let processor {
            let flushed = FlagBox()
            let flush = Task { await processor.forceFlush(); flushed.value.store(true, ordering: .releasing) }
            while !flushed.value.load(ordering: .acquiring) {
                if ContinuousClock.now >= deadline { exceeded = true; break }
                try? await Task.sleep(for: .milliseconds(2))
            }
            processor.stop(abandon: exceeded)
            while !processor.exited.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(1)) }
            _ = await flush.value
            let dropped = processor.dropRemaining(reason: .shutdown)
            if dropped > 0 {
                core.logger.warning("shutdown deadline passed: \(dropped) records were not exported (counted as dropped: shutdown)")
            }
        }
        await exporter.shutdown()
        core.exportExecutor.stop()
        return ShutdownSummary(stats: stats(), deadlineExceeded: exceeded)
    }

    deinit {
        processor?.stop(abandon: true)
        core.exportExecutor.stop()
    }
}

final class FlagBox: Sendable {
    let value = Atomic<Bool>(false)
}
