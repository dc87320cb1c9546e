public import CoreMetrics
import Instrumentation
public import Logging
public import Resilience
import Tracing

/// Bootstrap in one place, where swift-otel's `OTel.bootstrap(configuration:)` sits.
///
/// ```swift
/// let telemetry = try Spillway.bootstrap(configuration: .fromEnvironment())
/// // The pipeline first: a ServiceGroup shuts down in reverse order, so it drains last.
/// let group = ServiceGroup(services: [telemetry, server], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
public enum Spillway {
    /// Starts a pipeline and makes it the back end of swift-log and swift-distributed-tracing
    /// (and, with `exportMetrics`, of swift-metrics), then returns it: run it in your `ServiceGroup` *before*
    /// the services that emit (a group shuts down in reverse order), so that it drains last.
    ///
    /// Each `LoggingSystem` / `InstrumentationSystem` / `MetricsSystem` can be bootstrapped only
    /// once per process (their rule): call this once, early in `main`.
    ///
    /// - Parameters:
    ///   - configuration: The pipeline's configuration (see ``TelemetryConfigurationSource`` for
    ///     the layered one).
    ///   - exporter: A custom exporter. - Default value: OTLP/HTTP per `configuration.exporter`.
    ///   - logLevel: The level of every swift-log logger. - Default value: `.info`.
    ///   - logging: Whether to bootstrap swift-log with ``SpillwayLogHandler``. - Default value: `true`.
    ///   - tracing: Whether to bootstrap swift-distributed-tracing with ``SpillwayTracer``. - Default value: `true`.
    ///   - metrics: Another swift-metrics back end to bootstrap (a Prometheus registry, say); the
    ///     pipeline's self-metrics go to it. With `exportMetrics` too, both get every metric.
    ///     - Default value: none.
    ///   - exportMetrics: Whether to bootstrap swift-metrics with ``SpillwayMetricsFactory``, so
    ///     that the application's metrics are exported as OTLP through the pipeline (and spilled
    ///     and replayed with its spans and logs). - Default value: `false` (leave `MetricsSystem`
    ///     alone unless `metrics` is given).
    /// - Returns: The running pipeline, a swift-service-lifecycle `Service`.
    /// - Throws: ``ConfigurationError`` for an invalid configuration.
    public static func bootstrap(
        configuration: PipelineConfiguration, exporter: (any TelemetryExporter)? = nil, logLevel: Logger.Level = .info,
        logging: Bool = true, tracing: Bool = true, metrics: (any MetricsFactory)? = nil, exportMetrics: Bool = false
    ) throws(ConfigurationError) -> TelemetryPipeline {
        var configuration = configuration
        if let metrics, configuration.metricsFactory == nil { configuration.metricsFactory = metrics }
        let pipeline = try TelemetryPipeline(configuration: configuration, exporter: exporter)
        switch (metrics, exportMetrics) {
        case (let other?, true):
            MetricsSystem.bootstrap(MultiplexMetricsHandler(factories: [other, SpillwayMetricsFactory(pipeline: pipeline)]))
        case (nil, true): MetricsSystem.bootstrap(SpillwayMetricsFactory(pipeline: pipeline))
        case (let other?, false): MetricsSystem.bootstrap(other)
        case (nil, false): break
        }
        if logging {
            LoggingSystem.bootstrap { label in SpillwayLogHandler(pipeline: pipeline, label: label, logLevel: logLevel) }
        }
        if tracing { InstrumentationSystem.bootstrap(SpillwayTracer(pipeline: pipeline)) }
        return pipeline
    }
}
