import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What emitting code needs: the ring, the limits, the books, and where records go.
/// Shared by every ``Tracer``, ``TelemetryLogger`` and ``Span`` of one pipeline.
@usableFromInline
final class PipelineCore: @unchecked Sendable {
    let ring: Ring
    let limits: AttributeLimits
    /// Per route (0: the default route): how long a producer may wait for room, or `nil` to drop.
    let blockNanos: [UInt64?]
    let routes: RouteTable
    let accepting = Atomic<Bool>(true)
    /// `OTEL_SDK_DISABLED` inverted; checked first by every emitting call. Live.
    @usableFromInline let enabled = Atomic<Bool>(true)
    /// The sampler (``SamplerState``), read by every `startSpan`. Live.
    let samplerMode = Atomic<UInt8>(4)
    let samplerBound = Atomic<UInt64>(0)
    /// `exceptionStackTraces`, encoded by ``StackTraceCapture/encode(_:)``. Live.
    let stackTraceThreshold = Atomic<UInt8>(0)
    /// Books every record's outcome and makes every event.
    let ledger: Ledger
    let scopes = ScopeRegistry()
    let resource: [UInt8]
    let logger: Logger
    let processorKind: ProcessorKind
    let dispatcher: ExportEventDispatcher
    /// Where export tasks run: never the cooperative pool (see ``ExportExecutor``).
    let exportExecutor = ExportExecutor(name: "spillway-export")
    /// Set once at start, before any record is emitted.
    /// Weak: the pipeline owns the processor, and the processor holds the core.
    weak var processor: BatchProcessor?
    var simple: SimpleProcessor?
    /// The chain every batch goes through: error handling → measured → retry → breaker → exporter.
    var chain: (any TelemetryExporter)!
    var breaker: (@Sendable () -> CircuitBreakerSnapshot)?
    var metrics: PipelineMetrics?
    /// The spill store and its replayer, when configured.
    var spill: SpillStore?
    var replayer: Replayer?
    /// Fixed at creation, read on every emit (a `let`: no exclusivity check, unlike `simple`).
    let usesSimpleProcessor: Bool
    private let tasks = Mutex<(next: Int, running: [Int: Task<Void, Never>])>((0, [:]))
    private let monitorStop = Atomic<Bool>(false)
    private let monitorParker = ThreadParker()

    init(configuration: PipelineConfiguration, logger: Logger) throws(ConfigurationError) {
        self.ring = try Ring(capacity: configuration.ringCapacity)
        self.limits = configuration.limits
        func nanos(_ policy: OverflowPolicy) -> UInt64? {
            if case .block(let t) = policy { return UInt64(clamping: t.nanoseconds) }
            return nil
        }
        self.routes = RouteTable(configuration.routes)
        self.blockNanos =
            [nanos(configuration.overflowPolicy)] + configuration.routes.map { nanos($0.overflowPolicy ?? configuration.overflowPolicy) }
        self.resource = ResourceEncoding.encode(configuration)
        self.usesSimpleProcessor = configuration.processor == .simple
        self.processorKind = configuration.processor
        self.logger = logger
        var routeHandlers: [String: any ExportErrorHandler] = [:]
        for route in configuration.routes { if let handler = route.errorHandler { routeHandlers[route.name] = handler } }
        self.dispatcher = ExportEventDispatcher(
            defaultHandler: configuration.exportErrorHandler, routeHandlers: routeHandlers, logger: logger)
        self.ledger = Ledger(
            dispatcher: dispatcher, processor: configuration.processor, logger: logger, routeNames: [nil] + configuration.routes.map(\.name)
        )
        applyLiveSwitches(configuration)
    }

    /// Stores the settings that emitting code reads on every call.
    func applyLiveSwitches(_ configuration: PipelineConfiguration) {
        let sampler = SamplerState(configuration.sampler)
        samplerBound.store(sampler.bound, ordering: .relaxed)
        samplerMode.store(sampler.mode, ordering: .relaxed)
        stackTraceThreshold.store(StackTraceCapture.encode(configuration.exceptionStackTraces), ordering: .relaxed)
        enabled.store(configuration.isEnabled, ordering: .relaxed)
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
            return drop(
                type: type, .recordTooLarge,
                detail: "a record of \(buffer.count) bytes exceeds the ring's maximum of \(ring.maximumRecordLength)")
        case .full:
            if let nanos = blockNanos[type.recordRoute], blockUntilWritten(buffer, type: type, nanoseconds: nanos) { return .queued }
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
            switch ring.tryWrite(type: type, from: buffer.base, length: buffer.count) {
            case .written: return true
            case .full, .tooLarge: break
            }
            if !accepting.load(ordering: .relaxed) || monotonicNanos() >= deadline { return false }
            pause = min(pause * 2, 200_000)
        }
    }

    /// Counts one record dropped at intake; the monitor reports it to the handlers.
    @inline(never)
    func drop(type: Int32, _ reason: DropReason, detail: @autoclosure () -> String) -> EmitResult {
        ledger.droppedAtIntake(type: type, reason, detail: detail())
        return .dropped(reason)
    }

    /// Sends one batch through the chain, whose error-handling stage books every outcome.
    func export(_ batch: ExportBatch) async -> Result<ExportResponse, any Error> {
        do {
            return .success(try await chain.export(batch))
        } catch {
            return .failure(error)
        }
    }

    /// The drain thread's overflow valve: every export slot is busy and the ring is half full, so
    /// the batch goes to the spill store now instead of waiting (and the ring dropping records).
    func spillUnderPressure(_ batch: ExportBatch) {
        guard let spill else { return }
        let message = "every export slot was busy and the ring was half full: spilled instead of waiting"
        do throws(SegmentWriter.Failure) {
            let segment = try spill.append(batch, to: .spilled)
            ledger.kept(
                batch, in: .spilled, segment: segment, attempt: 0, error: ResilienceError(code: .ringFull, message: message),
                kind: .overflow)
        } catch {
            let failure = ResilienceError(
                code: error.isDiskFull ? .diskFull : .spillFailed,
                message: "\(message), but the spill store could not write it: \(error.message)")
            ledger.dropped(batch, error.isDiskFull ? .diskFull : .spillFailed, attempt: 0, error: failure, kind: .overflow)
        }
    }

    /// Runs `body` as an export task on the export executor; ``cancelExports()`` cancels it.
    func startExport(_ body: @escaping @Sendable () async -> Void) {
        tasks.withLock { state in
            state.next += 1
            let id = state.next
            // Registered under the lock, so the task cannot unregister before it is registered.
            state.running[id] = Task(executorPreference: exportExecutor) { [self] in
                await body()
                _ = tasks.withLock { $0.running.removeValue(forKey: id) }
            }
        }
    }

    /// Cancels every export under way: retries and batches waiting in memory give up (`shutdown`).
    func cancelExports() {
        for task in tasks.withLock({ $0.running.values }) { task.cancel() }
    }

    var exportsRunning: Int { tasks.withLock { $0.running.count } }

    // MARK: Monitor

    /// Reports intake drops and refreshes the metrics every 100 ms, on a thread of its own.
    /// The thread holds the core only while it ticks, so releasing the pipeline frees the
    /// core (and unmaps the ring) at once, on the releasing thread.
    func startMonitor() {
        let parker = monitorParker
        startThread(name: "spillway-monitor") { [weak self] in
            func tickIfRunning() -> Bool {
                guard let core = self, !core.monitorStop.load(ordering: .relaxed) else { return false }
                core.tick()
                return true
            }
            while tickIfRunning() { parker.park(nanoseconds: 100_000_000) }
        }
    }

    func stopMonitor() {
        monitorStop.store(true, ordering: .relaxed)
        monitorParker.unpark()
    }

    /// Turns the intake drops counted since the last tick into events; refreshes the metrics.
    func tick() {
        let ring = self.ring
        ledger.reportIntakeDrops { Self.describe($0, ring: ring) }
        metrics?.update(stats())
        ledger.logThrottle.flush(force: false)
    }

    private static func describe(_ reason: DropReason, ring: Ring) -> (ExportFailureKind, ResilienceError) {
        switch reason {
        case .ringFull:
            return (.overflow, ResilienceError(code: .ringFull, message: "the ring (\(ring.capacity) bytes) was full"))
        case .recordTooLarge:
            return (
                .permanent,
                ResilienceError(
                    code: .recordTooLarge, message: "records larger than the ring's maximum of \(ring.maximumRecordLength) bytes")
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
            guard let spill else { return (0, 0) }
            return (spill.recordsOnDisk(signal), spill.recordsOnDisk(signal, .rejected))
        }
        let (tracesOnDisk, tracesRejected) = disk(.traces)
        let (logsOnDisk, logsRejected) = disk(.logs)
        return PipelineStats(
            spans: traces.snapshot(onDisk: tracesOnDisk, rejectedOnDisk: tracesRejected),
            logs: logs.snapshot(onDisk: logsOnDisk, rejectedOnDisk: logsRejected),
            ringBytesInUse: ring.bytesInUse, ringCapacity: ring.capacity,
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
    }
}
