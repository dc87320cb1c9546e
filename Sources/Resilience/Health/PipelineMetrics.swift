import CoreMetrics
import Synchronization

/// The processor-side self-metrics, refreshed from ``PipelineStats`` by the monitor thread
/// every 100 ms (never on the emit path).
///
/// | metric | instrument | |
/// |---|---|---|
/// | `otel.sdk.processor.span.processed`, `….log.processed` | counter | records done with (`error.type`: the ``DropReason``) |
/// | `otel.sdk.processor.span.queue.size`, `otel.sdk.processor.log.queue.size` | gauge | records pending |
/// | `spillway.ring.usage`, `spillway.ring.capacity` | gauge | bytes (OTel's `queue.capacity` counts records, which a byte ring has not) |
/// | `spillway.exporter.retries` | counter | retries scheduled |
/// | `spillway.circuit_breaker.trips` | counter | |
/// | `spillway.circuit_breaker.state` | gauge | 0 closed, 1 half-open, 2 open |
///
/// An ``ExportDestination``'s books are measured the same way, each instrument with the
/// dimension `spillway.destination` (its name) and without the ring's gauges (the ring is the pipeline's).
final class PipelineMetrics: @unchecked Sendable {
    private let factory: any MetricsFactory
    private let dimensions: [[(String, String)]]  // index: signal - 1
    private let processed: [Counter]
    private let queueSize: [Gauge]
    private let ringUsage: Gauge?
    private let ringCapacity: Gauge?
    private let retries: Counter
    private let trips: Counter
    private let breakerState: Gauge
    private var droppedCounters: [String: Counter] = [:]
    private var last: PipelineStats?

    init(processor: ProcessorKind, factory: any MetricsFactory = MetricsSystem.factory, destination: String? = nil) {
        self.factory = factory
        let kind = processor == .batch ? "batching" : "simple"
        let extra = destination.map { [("spillway.destination", $0)] } ?? []
        let dimensions = ["span", "log"].map { word in
            [("otel.component.type", "\(kind)_\(word)_processor"), ("otel.component.name", "\(kind)_\(word)_processor/0")] + extra
        }
        self.dimensions = dimensions
        processed = ["span", "log"].enumerated().map { i, word in
            Counter(label: "otel.sdk.processor.\(word).processed", dimensions: dimensions[i], factory: factory)
        }
        queueSize = ["span", "log"].enumerated().map { i, word in
            Gauge(label: "otel.sdk.processor.\(word).queue.size", dimensions: dimensions[i], factory: factory)
        }
        ringUsage = destination == nil ? Gauge(label: "spillway.ring.usage", factory: factory) : nil
        ringCapacity = destination == nil ? Gauge(label: "spillway.ring.capacity", factory: factory) : nil
        retries = Counter(label: "spillway.exporter.retries", dimensions: extra, factory: factory)
        trips = Counter(label: "spillway.circuit_breaker.trips", dimensions: extra, factory: factory)
        breakerState = Gauge(label: "spillway.circuit_breaker.state", dimensions: extra, factory: factory)
    }

    /// Called by one thread at a time (the monitor's tick holds a lock).
    func update(_ stats: PipelineStats) {
        for (i, (now, before)) in [(stats.spans, last?.spans), (stats.logs, last?.logs)].enumerated() {
            let exported = now.exported - (before?.exported ?? 0)
            if exported > 0 { processed[i].increment(by: exported) }
            for (reason, count) in now.dropped {
                let delta = count - (before?.dropped[reason] ?? 0)
                guard delta > 0 else { continue }
                let key = "\(i)/\(reason.rawValue)"
                let counter =
                    droppedCounters[key]
                    ?? {
                        let c = Counter(
                            label: "otel.sdk.processor.\(i == 0 ? "span" : "log").processed",
                            dimensions: dimensions[i] + [("error.type", reason.rawValue)], factory: factory)
                        droppedCounters[key] = c
                        return c
                    }()
                counter.increment(by: delta)
            }
            queueSize[i].record(now.pending)
        }
        ringUsage?.record(stats.ringBytesInUse)
        ringCapacity?.record(stats.ringCapacity)
        let newRetries = stats.retries - (last?.retries ?? 0)
        if newRetries > 0 { retries.increment(by: newRetries) }
        let newTrips = stats.circuitBreakerTrips - (last?.circuitBreakerTrips ?? 0)
        if newTrips > 0 { trips.increment(by: newTrips) }
        switch stats.circuitBreakerState {
        case .closed?, nil: breakerState.record(0)
        case .halfOpen?: breakerState.record(1)
        case .open?: breakerState.record(2)
        }
        last = stats
    }
}
