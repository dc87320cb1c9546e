import Synchronization

/// Hands each route's batches to the ``ExportDestination``s the route names, besides (or instead
/// of) the pipeline's exporter: the fan-out of ``ExportRoute/destinations``.
///
/// Called by the drain thread for every batch it builds. A destination's copy starts an export
/// task when the destination has a free export slot (its own window and byte budget), or waits
/// in the destination's queue (up to the signal's `maxBytesInFlight` more) for the next slot;
/// beyond that it goes to the destination's part of the spill store, or is dropped
/// (`destination_busy`) without one — the drain thread never waits for a destination, so a slow
/// or dead one holds back neither the route's other destinations nor the other routes. Each
/// copy is booked in the destination's ledger.
///
/// Thread-safety: ``send(_:route:)`` from the drain thread only; the rest from any thread.
final class DestinationFanOut: Sendable {
    /// One per ``PipelineConfiguration/destinations``, in order.
    let stacks: [DestinationStack]
    /// Per route index (0: the default route): the stacks that get its batches.
    private let routeStacks: [[Int]]
    /// Per route index: whether the pipeline's own exporter gets its batches too.
    private let routeToPipeline: [Bool]
    /// Per destination and signal: exports under way, and the batches waiting for one of them.
    private let lanes: [SignalTable<LaneState>]
    private let budgets: SignalTable<Int>
    /// Woken when a destination's export ends (a flush waits for them).
    private let parker: ThreadParker

    init(stacks: [DestinationStack], configuration: PipelineConfiguration, parker: ThreadParker) {
        self.stacks = stacks
        self.parker = parker
        let names = stacks.map(\.name)
        let routes: [ExportRoute?] = [nil] + configuration.routes
        routeStacks = routes.map { route in ExportRoute.destinations(of: route).compactMap { name in names.firstIndex(of: name) } }
        routeToPipeline = routes.map { ExportRoute.destinations(of: $0).contains(ExportDestination.pipelineExporter) }
        lanes = stacks.map { _ in SignalTable { _ in LaneState() } }
        budgets = SignalTable(
            traces: configuration.traces.maxBytesInFlight, logs: configuration.logs.maxBytesInFlight,
            metrics: configuration.logs.maxBytesInFlight)
    }

    /// Whether the pipeline's own exporter gets the batches of route `route`.
    func sendsToPipeline(route: Int) -> Bool { route < routeToPipeline.count ? routeToPipeline[route] : true }

    /// Hands a copy of `batch` (of route `route`) to each destination of the route.
    func send(_ batch: ExportBatch, route: Int) {
        guard route < routeStacks.count else { return }
        for index in routeStacks[route] { send(batch, to: index) }
    }

    private func send(_ batch: ExportBatch, to index: Int) {
        let stack = stacks[index]
        let lane = lanes[index][batch.signal]
        let window = stack.windows[batch.signal]
        stack.ledger.accepted(batch.signal, batch.recordCount)
        let bytes = batch.body.count
        let budget = budgets[batch.signal]
        enum Decision { case start, queued, full }
        let decision = lane.state.withLock { lane -> Decision in
            if lane.running < window.limit && (lane.running == 0 || lane.bytes + bytes <= budget) {
                lane.running += 1
                lane.bytes += bytes
                return .start
            }
            guard lane.queuedBytes + bytes <= budget else { return .full }
            lane.queue.append(batch)
            lane.queuedBytes += bytes
            return .queued
        }
        window.dispatched(waited: decision != .start)
        switch decision {
        case .start: start(batch, on: stack, lane: lane)
        case .queued: break
        case .full: keepOrDrop(batch, in: stack)
        }
    }

    /// Exports `batch`, then whatever waits in the lane's queue, one after another, until it is
    /// empty: the task frees its slot under the same lock that ``send(_:to:)`` queues under, so
    /// no queued batch is left without a task.
    private func start(_ batch: ExportBatch, on stack: DestinationStack, lane: LaneState) {
        let (tasks, parker) = (stack.tasks, self.parker)
        tasks.start {
            var next: ExportBatch? = batch
            while let current = next {
                _ = await tasks.export(current)
                next = lane.state.withLock { lane -> ExportBatch? in
                    lane.bytes -= current.body.count
                    guard !lane.queue.isEmpty else {
                        lane.running -= 1
                        return nil
                    }
                    let following = lane.queue.removeFirst()
                    lane.queuedBytes -= following.body.count
                    lane.bytes += following.body.count
                    return following
                }
            }
            parker.unpark()
        }
    }

    /// Shutdown's leftovers: each destination of the route gets a copy of `batch` on disk (or
    /// counts it dropped: `shutdown` without a spill store), without an attempt.
    func keep(_ batch: ExportBatch, route: Int) {
        guard route < routeStacks.count else { return }
        for index in routeStacks[route] {
            stacks[index].ledger.accepted(batch.signal, batch.recordCount)
            keepOrDrop(batch, in: stacks[index], kind: .shutdown)
        }
    }

    /// The destination's part of the spill store keeps the copy, or it is dropped: an overflow
    /// (every slot busy) as `destination_busy`, shutdown's leftovers as `shutdown`.
    private func keepOrDrop(_ batch: ExportBatch, in stack: DestinationStack, kind: ExportFailureKind = .overflow) {
        let message =
            kind == .shutdown
            ? "not exported by the shutdown deadline" : "every export slot of the destination was busy: spilled instead of waiting"
        let error = ResilienceError(code: kind == .shutdown ? .shutDown : .ringFull, message: message)
        func drop() {
            if kind == .shutdown {
                stack.ledger.dropped(batch, .shutdown, attempt: 0, error: error, kind: kind)
            } else {
                stack.ledger.droppedBusy(batch)
            }
        }
        guard let store = stack.store, store.keep(batch, booking: stack.ledger, error, kind: kind) != nil else { return drop() }
    }

    /// Whether any destination's export is under way (or waits in a lane's queue).
    var busy: Bool {
        lanes.contains { table in table.values.contains { $0.state.withLock { $0.running > 0 } } }
    }

    /// Cancels every destination's exports (shutdown's deadline).
    func cancelAll() { for stack in stacks { stack.tasks.cancelAll() } }

    /// Export tasks of the destinations that have not ended.
    var running: Int { stacks.reduce(0) { $0 + $1.tasks.running } }
}

/// One destination's exports of one signal, under a lock.
final class LaneState: Sendable {
    let state = Mutex(Lane())
}

/// One destination's exports of one signal: how many run, their bytes, and the batches waiting
/// for a slot (at most the signal's ``BatchConfiguration/maxBytesInFlight`` of them).
struct Lane {
    var running = 0
    var bytes = 0
    var queue: [ExportBatch] = []
    var queuedBytes = 0
}
