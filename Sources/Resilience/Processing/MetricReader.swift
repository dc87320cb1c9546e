import Logging
import Synchronization

/// Collects the pipeline's metric series every ``PipelineConfiguration/Metrics/exportInterval``
/// and exports the requests one at a time, in the order they were collected, through the chain of
/// the pipeline's own exporter — retry, breaker, handlers and, with a spill store, the store.
///
/// Order matters for metrics as it does not for spans: a back end takes a series' points in time
/// order. So requests never overtake each other: one is under way at a time (the signal's export
/// window is fixed at 1), and while the spill store holds metrics not yet replayed, every new
/// request joins them on disk, to be replayed behind them, instead of going straight out.
/// Collection times are kept whatever happens to delivery: a request carries the times of its
/// collection, also when it is replayed an hour later.
///
/// Each request's data points are booked in the ledger when collected (``Ledger/accepted(_:_:)``)
/// and settled by the chain (exported, spilled, dropped) as spans are. Without a spill store, at
/// most ``PipelineConfiguration/Metrics/maxQueuedRequests`` wait in memory; past that the oldest
/// is dropped (`queue_full`, told to the handlers). With one, the queue is short by itself: once
/// a request joins the backlog on disk, every request queued behind it follows it there at once.
///
/// While the collector answers (the breaker closed) and the replayer is sending the metrics on
/// disk, a new request waits for them, up to 2 s, rather than joining them: otherwise, with a
/// short interval, every request would take the way through the disk for as long as the
/// replayer's rounds kept finding new ones.
///
/// One request's export, retries included, ends by ``PipelineConfiguration/Metrics/exportTimeout``
/// (`OTEL_METRIC_EXPORT_TIMEOUT`, 30 s): no retry is scheduled past it (``ExportDeadline``).
///
/// Thread-safety: safe from any thread.
final class MetricReader: Sendable {
    let registry: MetricRegistry
    private let configuration: PipelineConfiguration.Metrics
    private let resource: [UInt8]
    private let ledger: Ledger
    private let tasks: ExportTasks
    private let store: SpillStore?
    /// The breaker's state: while it is open, a request joins the backlog on disk at once.
    private let breaker: (@Sendable () -> CircuitBreakerSnapshot)?
    private let logger: Logger

    private struct State {
        var queue: [ExportBatch] = []
        var sending = false
        var sequence: UInt64 = 0
        var timer: Task<Void, Never>?
        var stopped = false
    }
    private let state = Mutex(State())
    /// Collections one at a time: two collecting at once could enqueue out of order.
    private let collecting = Mutex(())

    init(
        configuration: PipelineConfiguration.Metrics, resource: [UInt8], ledger: Ledger, tasks: ExportTasks, store: SpillStore?,
        breaker: (@Sendable () -> CircuitBreakerSnapshot)?, logger: Logger
    ) {
        self.breaker = breaker
        self.registry = MetricRegistry(cardinalityLimit: configuration.cardinalityLimit)
        self.configuration = configuration
        self.resource = resource
        self.ledger = ledger
        self.tasks = tasks
        self.store = store
        self.logger = logger
    }

    /// Starts collecting every export interval, on the export executor.
    func start() {
        let interval = configuration.exportInterval
        let timer = Task(executorPreference: tasks.executor) { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled, let self else { return }
                self.collect()
            }
        }
        state.withLock { $0.timer = timer }
    }

    /// Collects every series now and queues the requests for export (none when nothing changed).
    func collect() {
        collecting.withLock { _ in
            let now = nowUnixNano()
            let families = registry.collect(temporality: configuration.temporality, now: now)
            guard !families.isEmpty else { return }
            let requests = MetricEncoding.requests(families, resource: resource, temporality: configuration.temporality, now: now)
            var overflow: [ExportBatch] = []
            let start = state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                for request in requests {
                    let batch = ExportBatch(signal: .metrics, body: request.body, recordCount: request.points, sequence: state.sequence)
                    state.sequence += 1
                    ledger.accepted(.metrics, batch.recordCount)
                    state.queue.append(batch)
                }
                // With a store, the sender moves the queue to disk when it meets a backlog: moving
                // it here could put newer requests on disk before the one the sender holds.
                while store == nil && state.queue.count > configuration.maxQueuedRequests {
                    overflow.append(state.queue.removeFirst())
                }
                if state.sending { return false }
                state.sending = true
                return true
            }
            for batch in overflow {
                let error = ResilienceError(
                    code: .queueFull,
                    message: "\(configuration.maxQueuedRequests) collected metric requests were waiting for the collector, "
                        + "and there is no spill store: the oldest was dropped")
                ledger.dropped(batch, .queueFull, attempt: 0, error: error, kind: .overflow)
            }
            if start { tasks.start { [self] in await send() } }
        }
    }

    /// Sends the queued requests, oldest first, one at a time, until the queue is empty.
    private func send() async {
        while let batch = state.withLock({ state -> ExportBatch? in
            if state.queue.isEmpty {
                state.sending = false
                return nil
            }
            return state.queue.removeFirst()
        }) {
            if let store, await backlogRemains(in: store) {
                // Behind the requests on disk, so that the replayer sends them in order; and
                // every request queued meanwhile behind it (they are newer).
                let message = "metrics not yet replayed are in the spill store: kept behind them, in order"
                keep(batch, in: store, message)
                for queued in takeQueue() {
                    keep(queued, in: store, message)
                }
                continue
            }
            if Task.isCancelled {
                if let store {
                    keep(batch, in: store, "the pipeline shut down before the request was sent")
                } else {
                    ledger.dropped(
                        batch, .shutdown, attempt: 0, error: ResilienceError(code: .shutDown, message: "the pipeline shut down"),
                        kind: .shutdown)
                }
                continue
            }
            // Retries end by the metrics export timeout: a request that cannot be delivered by
            // then goes to the store (or is dropped), and the next one is not held back longer.
            _ = await ExportDeadline.$current.withValue(.now + configuration.exportTimeout) { await tasks.export(batch) }
        }
    }

    /// Whether metrics wait in the spill store's spilled area: after waiting up to 2 s for the
    /// replayer to send them while the breaker is closed.
    private func backlogRemains(in store: SpillStore) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(2)
        while store.recordsOnDisk(.metrics, .spilled) > 0 {
            guard breaker?().state ?? .closed == .closed, ContinuousClock.now < deadline, !Task.isCancelled else { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// Into the spill store's spilled area, behind what it holds (booked as spilled, or as dropped
    /// when the write fails).
    private func keep(_ batch: ExportBatch, in store: SpillStore, _ message: String) {
        let error = ResilienceError(code: .circuitOpen, message: message)
        if store.keep(batch, booking: ledger, error, kind: .circuitOpen) == nil {
            ledger.dropped(batch, .spillFailed, attempt: 0, error: error, kind: .circuitOpen)  // not taken: cannot happen
        }
    }

    /// Everything queued, taken out of the queue.
    private func takeQueue() -> [ExportBatch] {
        state.withLock { state in
            defer { state.queue.removeAll() }
            return state.queue
        }
    }

    /// Whether nothing is queued or under way.
    var isIdle: Bool { state.withLock { $0.queue.isEmpty && !$0.sending } }

    /// Collects now, then returns when every request collected so far has been exported, kept
    /// or dropped, or at `deadline`, or when the calling task is cancelled.
    func flush(before deadline: ContinuousClock.Instant = .now + .seconds(3600)) async {
        collect()
        while !isIdle && ContinuousClock.now < deadline && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(2)) }
    }

    /// Stops the timer and takes no more requests; what is queued is still sent (the caller
    /// waits with ``flush(before:)`` first, then cancels the export tasks at its deadline).
    func stop() {
        let timer = state.withLock { state -> Task<Void, Never>? in
            state.stopped = true
            return state.timer
        }
        timer?.cancel()
    }

    /// What is still queued after the deadline: kept in the spill store, or dropped (`shutdown`).
    func settleQueued() {
        for batch in takeQueue() {
            if let store {
                keep(batch, in: store, "the shutdown deadline passed before the request was sent")
            } else {
                ledger.dropped(
                    batch, .shutdown, attempt: 0,
                    error: ResilienceError(code: .shutDown, message: "the shutdown deadline passed before the request was sent"),
                    kind: .shutdown)
            }
        }
    }
}
