import Synchronization

/// The metric requests on their way to one destination (the pipeline's own exporter or an
/// ``ExportDestination``), one at a time, in the order they were collected, through that
/// destination's chain — retry, breaker, handlers and, with a spill store, its part of the store.
///
/// Order matters for metrics as it does not for spans: a back end takes a series' points in time
/// order. So requests never overtake each other: one is under way at a time, and while the
/// destination's store holds metrics not yet replayed, every new request joins them on disk, to
/// be replayed behind them, instead of going straight out. While the collector answers (the
/// breaker closed) and the replayer is sending the metrics on disk, a new request waits for
/// them, up to 2 s, rather than joining them: otherwise, with a short interval, every request
/// would take the way through the disk for as long as the replayer's rounds kept finding new ones.
///
/// Each request's data points are booked in the destination's ledger when queued
/// (``Ledger/accepted(_:_:)``) and settled by the chain (exported, spilled, dropped) as spans
/// are. Without a store, at most ``PipelineConfiguration/Metrics/maxQueuedRequests`` wait in
/// memory; past that the oldest is dropped (`queue_full`, told to the handlers). One request's
/// export, retries included, ends by ``PipelineConfiguration/Metrics/exportTimeout``
/// (``ExportDeadline``).
///
/// Thread-safety: safe from any thread.
final class MetricLane: Sendable {
    let stack: DestinationStack
    private let configuration: PipelineConfiguration.Metrics

    private struct State {
        var queue: [ExportBatch] = []
        var sending = false
        var sequence: UInt64 = 0
        var stopped = false
    }
    private let state = Mutex(State())

    init(stack: DestinationStack, configuration: PipelineConfiguration.Metrics) {
        self.stack = stack
        self.configuration = configuration
    }

    private var ledger: Ledger { stack.ledger }

    /// Queues the requests of one collection (bodies and data points, of route `route`) and
    /// starts sending unless a send is under way.
    func enqueue(_ requests: [(body: [UInt8], points: Int)], route: String?) {
        var overflow: [ExportBatch] = []
        let start = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            for request in requests {
                let batch = ExportBatch(
                    signal: .metrics, body: request.body, recordCount: request.points, sequence: state.sequence, route: route)
                state.sequence += 1
                ledger.accepted(.metrics, batch.recordCount)
                state.queue.append(batch)
            }
            // With a store, the sender moves the queue to disk when it meets a backlog: moving
            // it here could put newer requests on disk before the one the sender holds.
            while stack.store == nil && state.queue.count > configuration.maxQueuedRequests {
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
        if start { stack.tasks.start { [self] in await send() } }
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
            if let store = stack.store, await backlogRemains(in: store) {
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
                if let store = stack.store {
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
            _ = await ExportDeadline.$current.withValue(.now + configuration.exportTimeout) { await stack.tasks.export(batch) }
        }
    }

    /// Whether metrics wait in the store's spilled area: after waiting up to 2 s for the
    /// replayer to send them while the breaker is closed.
    private func backlogRemains(in store: SpillStore) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(2)
        while store.recordsOnDisk(.metrics, .spilled) > 0 {
            guard stack.breaker?().state ?? .closed == .closed, ContinuousClock.now < deadline, !Task.isCancelled else { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// Into the store's spilled area, behind what it holds (booked as spilled, or as dropped
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

    /// Takes no more requests.
    func stop() { state.withLock { $0.stopped = true } }

    /// What is still queued after the deadline: kept in the store, or dropped (`shutdown`).
    func settleQueued() {
        for batch in takeQueue() {
            if let store = stack.store {
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
