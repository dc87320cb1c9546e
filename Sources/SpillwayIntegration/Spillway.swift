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
    /// (and, optionally, swift-metrics), then returns it: run it in your `ServiceGroup` *before*
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
    ///   - metrics: A swift-metrics back end to bootstrap (Spillway has no metrics signal; its
    ///     self-metrics go to this back end too). - Default value: none (leave `MetricsSystem` alone).
    /// - Returns: The running pipeline, a swift-service-lifecycle `Service`.
    /// - Throws: ``ConfigurationError`` for an invalid configuration.
    public static func bootstrap(
        configuration: PipelineConfiguration, exporter: (any TelemetryExporter)? = nil, logLevel: Logger.Level = .info,
        logging: Bool = true, tracing: Bool = true, metrics: (any MetricsFactory)? = nil
    ) throws(ConfigurationError) -> TelemetryPipeline {
        if let metrics { MetricsSystem.bootstrap(metrics) }
        let pipeline = try TelemetryPipeline(configuration: configuration, exporter: exporter)
        if logging {
            LoggingSystem.bootstrap { label in SpillwayLogHandler(pipeline: pipeline, label: label, logLevel: logLevel) }
        }
        if tracing { InstrumentationSystem.bootstrap(SpillwayTracer(pipeline: pipeline)) }
        return pipeline
    }
}
