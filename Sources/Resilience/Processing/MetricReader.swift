import Logging
import Synchronization

/// Collects the pipeline's metric series every ``PipelineConfiguration/Metrics/exportInterval``
/// and hands the requests to the destinations of their routes: each metric goes by the first
/// ``ExportRoute`` whose ``ExportRoute/metricNames`` match its name, else by the default route
/// (the pipeline's own exporter), and each destination sends its requests one at a time, in the
/// order they were collected (``MetricLane``).
///
/// Collection times are kept whatever happens to delivery: a request carries the times of its
/// collection, also when it is replayed an hour later. A route whose destinations leave out the
/// pipeline's exporter books its points in the pipeline's books as forwarded, as spans are.
///
/// Thread-safety: safe from any thread.
final class MetricReader: Sendable {
    let registry: MetricRegistry
    private let configuration: PipelineConfiguration.Metrics
    private let resource: [UInt8]
    /// The pipeline's books: where a route that leaves out the pipeline's exporter books its points as forwarded.
    private let ledger: Ledger
    /// One per destination stack: the pipeline's own first, then each ``ExportDestination``.
    let lanes: [MetricLane]
    private let routes: RouteTable
    /// Per route index (0: the default route): the lanes that get its requests.
    private let routeLanes: [[Int]]

    private struct State {
        var timer: Task<Void, Never>?
        var stopped = false
    }
    private let state = Mutex(State())
    /// Collections one at a time: two collecting at once could enqueue out of order.
    private let collecting = Mutex(())

    init(
        configuration: PipelineConfiguration.Metrics, resource: [UInt8], ledger: Ledger, stacks: [DestinationStack], routes: RouteTable
    ) {
        self.registry = MetricRegistry(cardinalityLimit: configuration.cardinalityLimit)
        self.configuration = configuration
        self.resource = resource
        self.ledger = ledger
        self.lanes = stacks.map { MetricLane(stack: $0, configuration: configuration) }
        self.routes = routes
        let names = stacks.map { $0.name ?? ExportDestination.pipelineExporter }
        routeLanes = ([nil] + routes.routes).map { ExportRoute.destinations(of: $0).compactMap { names.firstIndex(of: $0) } }
    }

    /// Starts collecting every export interval, on the pipeline's export executor.
    func start() {
        let interval = configuration.exportInterval
        let timer = Task(executorPreference: lanes[0].stack.tasks.executor) { [weak self] in
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
            guard !state.withLock({ $0.stopped }) else { return }
            let now = nowUnixNano()
            let families = registry.collect(temporality: configuration.temporality, now: now)
            guard !families.isEmpty else { return }
            var byRoute: [[[MetricRegistry.Collected]]] = Array(repeating: [], count: routeLanes.count)
            for family in families { byRoute[routes.route(metricName: family[0].series.name)].append(family) }
            for (route, families) in byRoute.enumerated() where !families.isEmpty {
                let requests = MetricEncoding.requests(families, resource: resource, temporality: configuration.temporality, now: now)
                let name = routes.name(route)
                for lane in routeLanes[route] { lanes[lane].enqueue(requests, route: name) }
                if !routeLanes[route].contains(0) {
                    for request in requests {
                        let batch = ExportBatch(signal: .metrics, body: [], recordCount: request.points, sequence: 0, route: name)
                        ledger.accepted(.metrics, batch.recordCount)
                        ledger.forwarded(batch)
                    }
                }
            }
        }
    }

    /// Whether nothing is queued or under way, for any destination.
    var isIdle: Bool { lanes.allSatisfy(\.isIdle) }

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
        for lane in lanes { lane.stop() }
    }

    /// What is still queued after the deadline: kept in the spill stores, or dropped (`shutdown`).
    func settleQueued() {
        for lane in lanes { lane.settleQueued() }
    }
}
