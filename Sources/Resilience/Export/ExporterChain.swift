import CoreMetrics

/// Puts exporter stages together in the order that works.
///
/// From the outside in: ``MeasuredExporter`` → your `perBatch` stages → ``RetryingExporter``
/// → your `perAttempt` stages → ``CircuitBreakingExporter`` → the exporter. So the breaker
/// counts every attempt (two failed attempts and a success leave two failures recorded), an
/// open breaker ends the retry loop at once instead of waiting out the backoff, and exactly one
/// stage retries. A ``TelemetryPipeline`` builds this chain from its configuration and puts its
/// ``ErrorHandlingExporter`` around it; use this to build the same chain yourself.
public enum ExporterChain {
    /// The chain around `exporter`. `retry` or `circuitBreaker` `nil` leaves that stage out.
    public static func standard<C: Clock>(
        wrapping exporter: any TelemetryExporter, retry: ExportRetryPolicy? = ExportRetryPolicy(),
        circuitBreaker: CircuitBreakerPolicy? = CircuitBreakerPolicy(), stages: [ExportStage] = [], measured: Bool = true,
        clock: C
    ) -> any TelemetryExporter where C.Duration == Duration {
        build(wrapping: exporter, retry: retry, circuitBreaker: circuitBreaker, stages: stages, measured: measured, clock: clock).exporter
    }

    /// The chain around `exporter`, on the continuous clock.
    public static func standard(
        wrapping exporter: any TelemetryExporter, retry: ExportRetryPolicy? = ExportRetryPolicy(),
        circuitBreaker: CircuitBreakerPolicy? = CircuitBreakerPolicy(), stages: [ExportStage] = [], measured: Bool = true
    ) -> any TelemetryExporter {
        standard(
            wrapping: exporter, retry: retry, circuitBreaker: circuitBreaker, stages: stages, measured: measured, clock: ContinuousClock())
    }

    struct Built: Sendable {
        var exporter: any TelemetryExporter
        var breaker: (@Sendable () -> CircuitBreakerSnapshot)?
        var resetBreaker: @Sendable () -> Void = {}
    }

    static func build<C: Clock>(
        wrapping exporter: any TelemetryExporter, retry: ExportRetryPolicy?, circuitBreaker: CircuitBreakerPolicy?,
        opensOnMisconfiguration: Bool = false, stages: [ExportStage], measured: Bool, metricsFactory: (any MetricsFactory)? = nil,
        instance: String = "0", clock: C
    ) -> Built where C.Duration == Duration {
        var chain = exporter
        var snapshot: (@Sendable () -> CircuitBreakerSnapshot)?
        var reset: @Sendable () -> Void = {}
        if let circuitBreaker {
            let breaker = CircuitBreakingExporter(
                wrapping: chain, policy: circuitBreaker, opensOnMisconfiguration: opensOnMisconfiguration, clock: clock)
            snapshot = { breaker.snapshot }
            reset = { breaker.reset() }
            chain = breaker
        }
        for stage in stages.reversed() where stage.placement == .perAttempt { chain = stage.wrap(chain) }
        if let retry { chain = RetryingExporter(wrapping: chain, policy: retry, clock: clock) }
        for stage in stages.reversed() where stage.placement == .perBatch { chain = stage.wrap(chain) }
        if measured { chain = MeasuredExporter(wrapping: chain, componentName: nil, instance: instance, factory: metricsFactory) }
        return Built(exporter: chain, breaker: snapshot, resetBreaker: reset)
    }
}
