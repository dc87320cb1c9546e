public import CoreMetrics
public import Resilience

/// A swift-metrics back end that exports the application's metrics as OTLP through a
/// ``TelemetryPipeline``: the same chain as its spans and logs, with retries, the circuit breaker,
/// the export-error handlers and, with a spill store, the spill store — so metrics recorded
/// while the collector is down arrive after it returns, in order, with the times they were
/// collected at.
///
/// ```swift
/// let telemetry = try Spillway.bootstrap(configuration: .fromEnvironment(), exportMetrics: true)
/// let requests = Counter(label: "http.server.requests", dimensions: [("http.route", "/cart")])
/// requests.increment()
/// Timer(label: "http.server.request.duration").recordNanoseconds(1_200_000)
/// ```
///
/// | swift-metrics | OTLP |
/// |---|---|
/// | `Counter` | monotonic `Sum`, integer |
/// | `FloatingPointCounter` | monotonic `Sum`, double |
/// | `Meter`, `Recorder(aggregate: false)` | `Gauge`, the last value |
/// | `Recorder` | explicit-bucket `Histogram` (``PipelineConfiguration/Metrics/histogramBoundaries``) |
/// | `Timer` | explicit-bucket `Histogram` in seconds, unit `s` (``PipelineConfiguration/Metrics/timerBoundaries``) |
///
/// With ``PipelineConfiguration/Metrics/histogramAggregation`` set to
/// ``PipelineConfiguration/Metrics/HistogramAggregation/base2ExponentialBucketHistogram``
/// (`OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=base2_exponential_bucket_histogram`),
/// recorders and timers are `ExponentialHistogram`s instead: no boundaries to choose, at most
/// ``PipelineConfiguration/Metrics/exponentialMaxSize`` (160) buckets per sign, up to 8 per power
/// of two. Recording stays free of locks and allocations.
///
/// The label is the metric's name; dimensions are string attributes. Sums and histograms are
/// cumulative unless ``PipelineConfiguration/Metrics/temporality`` says delta. The scope is
/// `swift-metrics`. Every ``PipelineConfiguration/Metrics/exportInterval`` the series are
/// collected into one request; `forceFlush()` and `shutdown(deadline:)` collect once more.
/// Each metric keeps at most ``PipelineConfiguration/Metrics/cardinalityLimit`` series; further
/// attribute sets share one series with `otel.metric.overflow=true`
/// (``PipelineStats/metricAttributeSetsOverflowed``). `reset()` on a counter begins its series
/// again with a new start time. A destroyed handler's series is reported once more, then forgotten.
///
/// Thread-safety: safe from any thread. Making a handler takes a lock (swift-metrics caches its
/// handlers in the `Counter`, `Timer`, … you keep); recording into one takes none and allocates
/// nothing: one atomic add into the series' stripe for the CPU the caller runs on.
public struct SpillwayMetricsFactory: MetricsFactory {
    private let registry: MetricRegistry
    private let recorder: MetricSeries.Instrument
    private let timer: MetricSeries.Instrument

    /// A back end recording into `pipeline`'s series, with its ``PipelineConfiguration/metrics``.
    public init(pipeline: TelemetryPipeline) {
        self.registry = pipeline.metricRegistry
        let metrics = pipeline.configuration.metrics
        if metrics.histogramAggregation == .base2ExponentialBucketHistogram {
            recorder = .exponentialHistogram(maxSize: metrics.exponentialMaxSize)
            timer = recorder
        } else {
            recorder = .histogram(boundaries: metrics.histogramBoundaries)
            timer = .histogram(boundaries: metrics.timerBoundaries)
        }
    }

    private func series(_ label: String, _ dimensions: [(String, String)], _ instrument: MetricSeries.Instrument, unit: String = "")
        -> MetricSeries
    {
        registry.series(name: label, instrument: instrument, unit: unit, attributes: dimensions.map { ($0.0, .string($0.1)) })
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        SpillwayMetricHandler(series(label, dimensions, .counter))
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        SpillwayMetricHandler(series(label, dimensions, .floatingPointCounter))
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        SpillwayMetricHandler(series(label, dimensions, .gauge))
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        SpillwayMetricHandler(series(label, dimensions, aggregate ? recorder : .gauge))
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        SpillwayMetricHandler(series(label, dimensions, timer, unit: "s"))
    }

    public func destroyCounter(_ handler: any CounterHandler) { destroy(handler) }
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { destroy(handler) }
    public func destroyMeter(_ handler: any MeterHandler) { destroy(handler) }
    public func destroyRecorder(_ handler: any RecorderHandler) { destroy(handler) }
    public func destroyTimer(_ handler: any TimerHandler) { destroy(handler) }

    private func destroy(_ handler: AnyObject) {
        if let handler = handler as? SpillwayMetricHandler { registry.remove(handler.series) }
    }
}

/// The one handler class behind every swift-metrics instrument of ``SpillwayMetricsFactory``:
/// each method records into the series (the instrument decides which methods swift-metrics calls).
final class SpillwayMetricHandler: CounterHandler, FloatingPointCounterHandler, MeterHandler, RecorderHandler, TimerHandler {
    let series: MetricSeries

    init(_ series: MetricSeries) { self.series = series }

    func increment(by amount: Int64) { series.increment(by: amount) }
    func increment(by amount: Double) {
        if series.isGauge { series.add(amount) } else { series.increment(by: amount) }
    }
    func decrement(by amount: Double) { series.add(-amount) }
    func reset() { series.reset() }
    func set(_ value: Int64) { series.set(Double(value)) }
    func set(_ value: Double) { series.set(value) }
    func record(_ value: Int64) { record(Double(value)) }
    func record(_ value: Double) {
        if series.isGauge { series.set(value) } else { series.record(value) }
    }
    func recordNanoseconds(_ duration: Int64) { series.record(Double(duration) / 1e9) }
}
