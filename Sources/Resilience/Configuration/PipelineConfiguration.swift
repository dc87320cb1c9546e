public import CoreMetrics

/// Everything a ``TelemetryPipeline`` needs, with the OpenTelemetry SDK defaults.
///
/// Build one in code, or start from ``fromEnvironment(_:)`` (the `OTEL_*` variables of the
/// specification plus `SPILLWAY_*`) and change what you need; values set in code win.
/// ``validate()`` (called by the pipeline) rejects invalid values with a ``ConfigurationError``
/// naming the key, the value and what is allowed.
public struct PipelineConfiguration: Sendable {
    /// `service.name`. - Default value: `unknown_service:<process name>`.
    /// - Environment variable: `OTEL_SERVICE_NAME`, or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`.
    public var serviceName: String?
    /// `service.version`. - Default value: none.
    public var serviceVersion: String?
    /// More resource attributes. - Environment variable: `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, percent-encoded).
    public var resourceAttributes: [String: AttributeValue]
    /// The ring's size in bytes: a power of two from 1 KiB to 1 GiB. The ring is allocated and
    /// pre-faulted at start and bounds the memory used by records waiting for export.
    /// - Default value: 16 MiB. - Environment variable: `SPILLWAY_RING_CAPACITY` (bytes). Needs a restart.
    public var ringCapacity: Int
    /// What a producer does when the ring is full. - Default value: ``OverflowPolicy/dropNewest``.
    /// - Environment variable: `SPILLWAY_OVERFLOW` (`drop_newest` | `block:<milliseconds>`).
    public var overflowPolicy: OverflowPolicy
    /// Batch (the default) or simple processing.
    public var processor: ProcessorKind
    /// Batching of spans. - Default value: 5 s delay, 512 per batch (`OTEL_BSP_*`).
    public var traces: BatchConfiguration
    /// Batching of log records. - Default value: 1 s delay, 512 per batch (`OTEL_BLRP_*`).
    public var logs: BatchConfiguration
    /// Collection and export of the application's metrics (`SpillwayMetricsFactory`).
    /// - Default value: every 60 s, cumulative (`OTEL_METRIC_EXPORT_*`).
    public var metrics: Metrics = Metrics()
    /// The status endpoint (`/health`, `/stats`, `/metrics`, `/config`). - Default value: `nil`, off.
    /// - Environment variables: `SPILLWAY_STATUS_ADDRESS` (`host:port`), `SPILLWAY_STATUS_CONFIG_TOKEN`.
    public var statusEndpoint: StatusEndpoint?
    /// Where and how to export.
    public var exporter: OTLPExporterConfiguration
    /// Attribute, event and link limits.
    public var limits: AttributeLimits
    /// How failed exports are retried; `nil` for no retries.
    /// - Default value: ``ExportRetryPolicy/init(initialDelay:maximumDelay:multiplier:jitter:maximumAttempts:maximumElapsedTime:)``
    ///   defaults: 1 s, 5 s, ×1.5, ±50 %, 10 s budget.
    public var retry: ExportRetryPolicy?
    /// When to stop calling a failing collector; `nil` for no breaker. - Default value: 5 failures, 30 s.
    /// With a collector pool (``OTLPExporterConfiguration/pool``) every collector has a breaker of
    /// its own with this policy (the default policy when `nil`: a pool needs breakers to move traffic).
    public var circuitBreaker: CircuitBreakerPolicy?
    /// Stages of your own in the exporter chain (see ``ExporterChain``). - Default value: none.
    public var exportStages: [ExportStage]
    /// Receives every export failure and every drop of the default route (and of routes
    /// without their own handler). - Default value: none (the ``TelemetryPipeline/exportFailures``
    /// stream and the stats still see everything).
    public var exportErrorHandler: (any ExportErrorHandler)?
    /// Classes of records with their own handler and overflow policy. - Default value: none.
    public var routes: [ExportRoute]
    /// Collectors that routes send to besides (or instead of) ``exporter``, each with its own
    /// chain, books and part of the spill store: see ``ExportDestination``. Restart only.
    /// - Default value: none.
    public var destinations: [ExportDestination] = []
    /// Whether the pipeline reports the OpenTelemetry SDK self-observability metrics through
    /// swift-metrics (to whatever backend the application bootstrapped). - Default value: `true`.
    public var selfMetrics: Bool
    /// The spill store: where batches that cannot be delivered now are kept on disk and
    /// replayed from. `nil`: they wait in memory (see ``ExportFailureEvent/Outcome/heldInMemory(retryAfter:)``).
    /// - Default value: `nil`. - Environment variable: `SPILLWAY_SPILL_DIR` (with the other values at their defaults).
    public var spill: SpillConfiguration?
    /// Where self-metrics go; `nil` for `MetricsSystem.factory` (what the application
    /// bootstrapped, or nothing). Set it to swift-metrics' `TestMetrics` in tests.
    public var metricsFactory: (any MetricsFactory)?
    /// Whether the SDK records anything. `false`: every API call returns at once, records
    /// nothing and allocates nothing (spans are non-recording, log records are not encoded).
    /// - Default value: `true`. - Environment variable: `OTEL_SDK_DISABLED` (`true` disables). Live.
    public var isEnabled: Bool
    /// Which spans are recorded. - Default value: ``TraceSampler/parentBasedAlwaysOn``.
    /// - Environment variables: `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`. Live.
    public var sampler: TraceSampler
    /// Which log records that carry an error also get `exception.stacktrace`.
    ///
    /// `nil` means *not set*: ``TelemetryLogger`` then captures at `.error` and above, and a log
    /// bridge such as the swift-log handler keeps its own behaviour (it captures none). Set it to
    /// apply one rule everywhere, bridges included. Below the threshold capturing costs nothing.
    /// - Default value: `nil` (not set). - Environment variable: `SPILLWAY_EXCEPTION_STACKTRACE_SEVERITY`
    ///   (`trace`, `debug`, `info`, `warn`, `error`, `fatal`, or `never`). Live.
    public var exceptionStackTraces: StackTraceCapture?
    /// How long ``TelemetryPipeline/run()`` (the swift-service-lifecycle `Service`) gives
    /// ``TelemetryPipeline/shutdown(deadline:)`` on graceful shutdown.
    /// - Default value: 10 s. - Environment variable: `SPILLWAY_SHUTDOWN_TIMEOUT` (milliseconds). Live.
    public var shutdownTimeout: Duration

    public init(
        serviceName: String? = nil, serviceVersion: String? = nil, resourceAttributes: [String: AttributeValue] = [:],
        ringCapacity: Int = 16 << 20, overflowPolicy: OverflowPolicy = .dropNewest, processor: ProcessorKind = .batch,
        traces: BatchConfiguration = .tracesDefault, logs: BatchConfiguration = .logsDefault,
        exporter: OTLPExporterConfiguration = .init(), limits: AttributeLimits = .init(),
        retry: ExportRetryPolicy? = ExportRetryPolicy(), circuitBreaker: CircuitBreakerPolicy? = CircuitBreakerPolicy(),
        exportStages: [ExportStage] = [], exportErrorHandler: (any ExportErrorHandler)? = nil, routes: [ExportRoute] = [],
        selfMetrics: Bool = true, metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.serviceName = serviceName
        self.serviceVersion = serviceVersion
        self.resourceAttributes = resourceAttributes
        self.ringCapacity = ringCapacity
        self.overflowPolicy = overflowPolicy
        self.processor = processor
        self.traces = traces
        self.logs = logs
        self.exporter = exporter
        self.limits = limits
        self.retry = retry
        self.circuitBreaker = circuitBreaker
        self.exportStages = exportStages
        self.exportErrorHandler = exportErrorHandler
        self.routes = routes
        self.selfMetrics = selfMetrics
        self.metricsFactory = metricsFactory
        self.spill = nil
        self.isEnabled = true
        self.sampler = .parentBasedAlwaysOn
        self.exceptionStackTraces = nil
        self.shutdownTimeout = .seconds(10)
    }

    /// This configuration with `handler` receiving export failures and drops.
    public func withExportErrorHandler(_ handler: any ExportErrorHandler) -> PipelineConfiguration {
        var copy = self
        copy.exportErrorHandler = handler
        return copy
    }

    /// This configuration with `body` receiving export failures and drops.
    ///
    /// ```swift
    /// let configuration = PipelineConfiguration.fromEnvironment().withExportErrorHandler { event in
    ///     logger.warning("telemetry export: \(event)")
    /// }
    /// ```
    public func withExportErrorHandler(_ body: @escaping @Sendable (ExportFailureEvent) throws -> Void) -> PipelineConfiguration {
        withExportErrorHandler(ClosureExportErrorHandler(body))
    }

    /// Checks every value. Throws the first ``ConfigurationError``.
    public func validate() throws(ConfigurationError) {
        try metrics.validate()
        let capacity = ringCapacity
        if capacity < 1024 || capacity > 1 << 30 || capacity & (capacity - 1) != 0 {
            throw ConfigurationError(key: "ringCapacity", value: "\(capacity)", allowed: "a power of two from 1024 to 1073741824 bytes")
        }
        try traces.validate(prefix: "traces")
        try logs.validate(prefix: "logs")
        try exporter.validate()
        if limits.countLimit < 0 {
            throw ConfigurationError(key: "limits.countLimit", value: "\(limits.countLimit)", allowed: "an integer >= 0")
        }
        if let v = limits.valueLengthLimit, v < 0 {
            throw ConfigurationError(key: "limits.valueLengthLimit", value: "\(v)", allowed: "an integer >= 0, or nil for unlimited")
        }
        if case .block(let t) = overflowPolicy, t < .zero {
            throw ConfigurationError(key: "overflowPolicy", value: "block(upTo: \(t))", allowed: "a duration >= 0")
        }
        try retry?.validate(key: "retry")
        try circuitBreaker?.validate(key: "circuitBreaker")
        try RouteTable(routes).validate(spill: spill)
        try validateDestinations()
        try spill?.validate()
        try sampler.validate()
    }
}

/// What a producer does when the ring has no room for its record.
public enum OverflowPolicy: Sendable, Hashable {
    /// Drop the new record and count it (`ring_full`). The emitting thread never waits.
    case dropNewest
    /// Wait up to the given time for room, then drop and count. For callers that would rather
    /// slow down than lose (audit logs, load generators).
    case block(upTo: Duration)

    /// The policy `text` spells as `SPILLWAY_OVERFLOW` does (`drop_newest`, `block:<milliseconds>`);
    /// `nil` for anything else.
    public init?(parsing text: String) {
        if text == "drop_newest" {
            self = .dropNewest
        } else if text.hasPrefix("block:"), let milliseconds = Int(text.dropFirst(6)), milliseconds >= 0 {
            self = .block(upTo: .milliseconds(milliseconds))
        } else {
            return nil
        }
    }

    /// What ``init(parsing:)`` accepts, for errors.
    public static let allowedSpellings = "drop_newest, block:<milliseconds>"
}

/// Batching for one signal.
public struct BatchConfiguration: Sendable, Hashable {
    /// The longest a record waits for its batch to fill.
    /// - Default value: 5 s for spans, 1 s for logs.
    /// - Environment variable: `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BLRP_SCHEDULE_DELAY` (milliseconds).
    public var scheduleDelay: Duration
    /// The most records in one export request.
    /// - Default value: 512. - Environment variable: `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`.
    public var maxExportBatchSize: Int
    /// How long one export may take before it is abandoned.
    /// - Default value: 30 s. - Environment variable: `OTEL_BSP_EXPORT_TIMEOUT`, `OTEL_BLRP_EXPORT_TIMEOUT` (milliseconds).
    public var exportTimeout: Duration
    /// The most export requests of this signal under way at once: the ceiling of the adaptive
    /// window, or the fixed number without ``adaptiveConcurrency``. The drain thread waits when
    /// the window is full (and, with a spill store, spills once the ring is half full). Requests
    /// under way also hold at most ``maxBytesInFlight`` of bodies, whatever the window.
    /// - Default value: 128.
    /// - Environment variable: `SPILLWAY_BSP_MAX_CONCURRENT_EXPORTS`, `SPILLWAY_BLRP_MAX_CONCURRENT_EXPORTS`.
    public var maxConcurrentExports: Int
    /// Whether the number of requests under way adapts to the collector, as TCP's congestion
    /// window does: from 2 it opens while it is what limits the pipeline and the collector's
    /// latency stays flat, and closes on timeouts, transport failures, 429, 502, 503 and 504, and on rising
    /// latency. A collector 200 ms away then gets enough requests at once to take 200 k spans/s;
    /// a fixed 2 would cap it at 5 k. `false`: always ``maxConcurrentExports``.
    /// - Default value: `true`.
    /// - Environment variable: `SPILLWAY_BSP_ADAPTIVE_CONCURRENCY`, `SPILLWAY_BLRP_ADAPTIVE_CONCURRENCY` (`true`, `false`).
    public var adaptiveConcurrency: Bool
    /// The most bytes of request bodies of this signal under way at once (one request may always
    /// go, however large): what the window may hold in memory. Against a distant collector this,
    /// not the window, sets the pace: with 8 MiB a collector 200 ms away took 178 k spans/s, with
    /// 32 MiB 279 k (and 12 MB more peak RSS).
    /// - Default value: 8 MiB (8388608).
    /// - Environment variable: `SPILLWAY_BSP_MAX_BYTES_IN_FLIGHT`, `SPILLWAY_BLRP_MAX_BYTES_IN_FLIGHT`.
    public var maxBytesInFlight: Int

    /// A batch configuration; every parameter but the delay defaults to the value documented on its property.
    public init(
        scheduleDelay: Duration, maxExportBatchSize: Int = 512, exportTimeout: Duration = .seconds(30), maxConcurrentExports: Int = 128,
        adaptiveConcurrency: Bool = true, maxBytesInFlight: Int = 8 << 20
    ) {
        self.scheduleDelay = scheduleDelay
        self.maxExportBatchSize = maxExportBatchSize
        self.exportTimeout = exportTimeout
        self.maxConcurrentExports = maxConcurrentExports
        self.adaptiveConcurrency = adaptiveConcurrency
        self.maxBytesInFlight = maxBytesInFlight
    }

    public static let tracesDefault = BatchConfiguration(scheduleDelay: .seconds(5))
    public static let logsDefault = BatchConfiguration(scheduleDelay: .seconds(1))

    func validate(prefix: String) throws(ConfigurationError) {
        if scheduleDelay <= .zero {
            throw ConfigurationError(key: "\(prefix).scheduleDelay", value: "\(scheduleDelay)", allowed: "a duration > 0")
        }
        if maxExportBatchSize <= 0 {
            throw ConfigurationError(key: "\(prefix).maxExportBatchSize", value: "\(maxExportBatchSize)", allowed: "an integer > 0")
        }
        if exportTimeout <= .zero {
            throw ConfigurationError(key: "\(prefix).exportTimeout", value: "\(exportTimeout)", allowed: "a duration > 0")
        }
        if maxConcurrentExports <= 0 {
            throw ConfigurationError(key: "\(prefix).maxConcurrentExports", value: "\(maxConcurrentExports)", allowed: "an integer > 0")
        }
        if maxBytesInFlight <= 0 {
            throw ConfigurationError(key: "\(prefix).maxBytesInFlight", value: "\(maxBytesInFlight)", allowed: "a number of bytes > 0")
        }
    }
}

/// When a log record that carries an error gets `exception.stacktrace`.
public enum StackTraceCapture: Sendable, Hashable {
    /// At `severity` and above.
    case atOrAbove(Severity)
    /// Never.
    case never

    /// 0 when not set, the severity number + 1, or 255 for never: what the pipeline's atomic holds.
    static func encode(_ value: StackTraceCapture?) -> UInt8 {
        switch value {
        case nil: return 0
        case .atOrAbove(let s)?: return s.number &+ 1
        case .never?: return 255
        }
    }
}
