extension PipelineConfiguration {
    /// How the pipeline's metrics (recorded through swift-metrics with `SpillwayMetricsFactory`)
    /// are collected and exported: every ``exportInterval``, one OTLP metrics request (more when
    /// it would hold over 4,096 data points) goes through the same chain as spans and logs —
    /// retry, breaker, handlers and, with a spill store, the spill store and its replay.
    ///
    /// A value type; the pipeline reads it at start (restart-only).
    public struct Metrics: Sendable, Hashable {
        /// How sums and histograms report.
        public enum Temporality: String, Sendable, Hashable, CaseIterable {
            /// Totals since each series began (OTLP `AGGREGATION_TEMPORALITY_CUMULATIVE`); a
            /// restarted process begins its series again with a new start time.
            case cumulative
            /// Changes since the previous collection (OTLP `AGGREGATION_TEMPORALITY_DELTA`).
            case delta
            /// The specification's `lowmemory`: delta for counters and histograms, which are
            /// the only sums and histograms swift-metrics has, so here the same as ``delta``.
            case lowMemory = "lowmemory"
        }

        /// How `Recorder` and `Timer` values are aggregated.
        public enum HistogramAggregation: String, Sendable, Hashable, CaseIterable {
            /// Counts per explicit bucket (``Metrics/histogramBoundaries``,
            /// ``Metrics/timerBoundaries``): OTLP `Histogram`.
            case explicitBucketHistogram = "explicit_bucket_histogram"
            /// Base-2 exponential buckets, at most ``Metrics/exponentialMaxSize`` per sign, at the
            /// finest scale up to 3 (8 buckets per power of two, each ≈ 9 % wide) that holds the
            /// values: OTLP `ExponentialHistogram`. No boundaries to choose, and the same relative
            /// precision from nanoseconds to hours. The buckets of a series take 8 KiB.
            case base2ExponentialBucketHistogram = "base2_exponential_bucket_histogram"
        }

        /// Every how often the series are collected and exported.
        /// - Default value: 60 s. - Environment variable: `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds).
        public var exportInterval: Duration
        /// How long one metrics request's export may take, retries included: no retry is
        /// scheduled past it, and the request goes to the spill store — without one it is
        /// dropped, counted and told to the handlers (a cumulative series' next point carries
        /// its totals) — so the requests behind it are not held back. Each attempt also ends by the
        /// exporter's own timeout (`OTEL_EXPORTER_OTLP_METRICS_TIMEOUT`).
        /// - Default value: 30 s. - Environment variable: `OTEL_METRIC_EXPORT_TIMEOUT` (milliseconds).
        public var exportTimeout: Duration
        /// - Default value: ``Temporality/cumulative``.
        /// - Environment variable: `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` (`cumulative`, `delta`, `lowmemory`).
        public var temporality: Temporality
        /// The most series (attribute sets) of one metric, the overflow series included; further
        /// attribute sets are recorded into one series with `otel.metric.overflow=true`.
        /// - Default value: 2000, the OpenTelemetry SDK's. - Environment variable: `SPILLWAY_METRICS_CARDINALITY_LIMIT`.
        public var cardinalityLimit: Int
        /// Upper bounds of the explicit buckets of `Recorder` histograms.
        /// - Default value: the OpenTelemetry SDK's, `0, 5, 10, 25, 50, 75, 100, 250, 500, 750,
        ///   1000, 2500, 5000, 7500, 10000`.
        public var histogramBoundaries: [Double]
        /// Upper bounds of the explicit buckets of `Timer` histograms, in seconds (timers are
        /// exported in seconds, unit `s`, as the semantic conventions' durations are).
        /// - Default value: the semantic conventions' `http.server.request.duration` buckets,
        ///   `0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10`.
        public var timerBoundaries: [Double]
        /// - Default value: ``HistogramAggregation/explicitBucketHistogram``.
        /// - Environment variable: `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`.
        public var histogramAggregation: HistogramAggregation
        /// The most buckets per sign of an exponential histogram point (the specification's
        /// `MaxSize`); values spanning more are merged into wider buckets (a smaller scale).
        /// - Default value: 160, the OpenTelemetry SDK's.
        public var exponentialMaxSize: Int
        /// The collected requests that may wait in memory for the collector, in order, when
        /// there is no spill store to keep them; past it the oldest is dropped (`queue_full`).
        /// - Default value: 64 (an hour at the default interval).
        public var maxQueuedRequests: Int

        /// The OpenTelemetry SDK's default explicit-bucket boundaries.
        public static let defaultHistogramBoundaries: [Double] = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]
        /// The semantic conventions' boundaries for durations in seconds (`http.server.request.duration`).
        public static let defaultTimerBoundaries: [Double] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]

        /// The OpenTelemetry defaults.
        public init(
            exportInterval: Duration = .seconds(60), exportTimeout: Duration = .seconds(30), temporality: Temporality = .cumulative,
            cardinalityLimit: Int = 2000, histogramBoundaries: [Double] = Metrics.defaultHistogramBoundaries,
            timerBoundaries: [Double] = Metrics.defaultTimerBoundaries, maxQueuedRequests: Int = 64,
            histogramAggregation: HistogramAggregation = .explicitBucketHistogram, exponentialMaxSize: Int = 160
        ) {
            self.histogramAggregation = histogramAggregation
            self.exponentialMaxSize = exponentialMaxSize
            self.exportInterval = exportInterval
            self.exportTimeout = exportTimeout
            self.temporality = temporality
            self.cardinalityLimit = cardinalityLimit
            self.histogramBoundaries = histogramBoundaries
            self.timerBoundaries = timerBoundaries
            self.maxQueuedRequests = maxQueuedRequests
        }

        func validate() throws(ConfigurationError) {
            if exportInterval <= .zero {
                throw ConfigurationError(key: "metrics.exportInterval", value: "\(exportInterval)", allowed: "a duration > 0")
            }
            if exportTimeout <= .zero {
                throw ConfigurationError(key: "metrics.exportTimeout", value: "\(exportTimeout)", allowed: "a duration > 0")
            }
            if cardinalityLimit < 2 {
                throw ConfigurationError(key: "metrics.cardinalityLimit", value: "\(cardinalityLimit)", allowed: "an integer ≥ 2")
            }
            if exponentialMaxSize < 2 {
                throw ConfigurationError(key: "metrics.exponentialMaxSize", value: "\(exponentialMaxSize)", allowed: "an integer ≥ 2")
            }
            if maxQueuedRequests < 1 {
                throw ConfigurationError(key: "metrics.maxQueuedRequests", value: "\(maxQueuedRequests)", allowed: "an integer ≥ 1")
            }
            for (key, bounds) in [("metrics.histogramBoundaries", histogramBoundaries), ("metrics.timerBoundaries", timerBoundaries)] {
                if bounds.contains(where: { !$0.isFinite }) || zip(bounds, bounds.dropFirst()).contains(where: { $0 >= $1 }) {
                    throw ConfigurationError(
                        key: key, value: bounds.map { "\($0)" }.joined(separator: ","), allowed: "finite numbers in increasing order")
                }
            }
        }
    }
}

/// The metric reader's variables: `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_METRIC_EXPORT_TIMEOUT`,
/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`,
/// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION` and `SPILLWAY_METRICS_CARDINALITY_LIMIT`.
func applyMetrics(_ env: EnvironmentReader, _ config: inout PipelineConfiguration) throws(ConfigurationError) {
    if let ms = try env.integer("OTEL_METRIC_EXPORT_INTERVAL", minimum: 1) { config.metrics.exportInterval = .milliseconds(ms) }
    if let ms = try env.integer("OTEL_METRIC_EXPORT_TIMEOUT", minimum: 1) { config.metrics.exportTimeout = .milliseconds(ms) }
    if let n = try env.integer("SPILLWAY_METRICS_CARDINALITY_LIMIT", minimum: 2) { config.metrics.cardinalityLimit = n }
    let temporalityKey = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
    if let v = env.string(temporalityKey) {
        guard let value = PipelineConfiguration.Metrics.Temporality(rawValue: v.lowercased()) else {
            throw ConfigurationError(
                key: temporalityKey, value: v, allowed: "cumulative, delta, lowmemory", source: env.source(temporalityKey))
        }
        config.metrics.temporality = value
    }
    let aggregationKey = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"
    if let v = env.string(aggregationKey) {
        guard let value = PipelineConfiguration.Metrics.HistogramAggregation(rawValue: v.lowercased()) else {
            throw ConfigurationError(
                key: aggregationKey, value: v, allowed: "explicit_bucket_histogram, base2_exponential_bucket_histogram",
                source: env.source(aggregationKey))
        }
        config.metrics.histogramAggregation = value
    }
}
