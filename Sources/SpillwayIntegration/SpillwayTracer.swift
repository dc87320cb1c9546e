public import Instrumentation
public import Resilience
import ServiceContextModule
public import Tracing

/// The swift-distributed-tracing back end: a `Tracer` whose spans go into a ``TelemetryPipeline``.
///
/// Bootstrap it once (``Spillway/bootstrap(configuration:exporter:logLevel:)`` does it for you):
///
/// ```swift
/// InstrumentationSystem.bootstrap(SpillwayTracer(pipeline: pipeline))
/// ```
///
/// and every instrumented library — Hummingbird, AsyncHTTPClient, your own `withSpan` calls —
/// emits into Spillway. Spans are parented through the task-local `ServiceContext`; the W3C
/// `traceparent` / `tracestate` headers are injected and extracted (``W3CTraceContext``).
/// Sampling is the pipeline's ``TraceSampler``: an unsampled span records nothing and costs
/// little, but its context still propagates (with the `sampled` flag clear).
///
/// Cost: the protocol makes every span a reference (its name and attributes can be read back
/// and changed until it ends), so each span allocates one object and keeps its attributes in a
/// `SpanAttributes` until `end()`, where they are encoded. The native ``Resilience/Tracer`` API
/// allocates nothing; the benchmarks measure both.
///
/// Thread-safety: safe from any thread.
public struct SpillwayTracer: Tracing.Tracer {
    /// The span type this tracer starts.
    public typealias Span = SpillwaySpan

    private let pipeline: TelemetryPipeline
    private let native: Resilience.Tracer

    /// - Parameters:
    ///   - pipeline: Where spans go.
    ///   - scope: The instrumentation scope of spans started through swift-distributed-tracing.
    ///     - Default value: `swift-distributed-tracing`.
    public init(pipeline: TelemetryPipeline, scope: String = "swift-distributed-tracing") {
        self.pipeline = pipeline
        self.native = pipeline.tracer(scope: scope)
    }

    /// Starts a span whose parent is the span in `context` (or a root), sampled by the pipeline's
    /// ``Resilience/TraceSampler``; the returned span's `context` carries it as the active span.
    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: Tracing.SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> SpillwaySpan {
        var serviceContext = context()
        let parent = serviceContext.spillwaySpanContext
        let span = native.startSpan(operationName, kind: Self.kind(kind), parent: parent, startTime: instant().nanosecondsSinceEpoch)
        serviceContext.spillwaySpanContext = span.context
        return SpillwaySpan(native: span, name: operationName, context: serviceContext)
    }

    /// Spans are not tracked by id; always `nil`.
    public func activeSpan(identifiedBy context: ServiceContext) -> SpillwaySpan? { nil }

    /// Starts a flush of the pipeline and returns (the protocol's call is synchronous).
    public func forceFlush() {
        let pipeline = self.pipeline
        Task { await pipeline.forceFlush() }
    }

    /// Reads `traceparent` and `tracestate` from `carrier` into `context` (as a remote parent);
    /// invalid headers are ignored.
    public func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract)
    where Extract.Carrier == Carrier {
        guard let traceparent = extractor.extract(key: "traceparent", from: carrier),
            let remote = W3CTraceContext.parse(traceparent: traceparent, tracestate: extractor.extract(key: "tracestate", from: carrier))
        else { return }
        context.spillwaySpanContext = remote
    }

    /// Writes `traceparent` (and a non-empty `tracestate`) for the span in `context` into `carrier`.
    public func inject<Carrier, Inject: Injector>(_ context: ServiceContext, into carrier: inout Carrier, using injector: Inject)
    where Inject.Carrier == Carrier {
        guard let spanContext = context.spillwaySpanContext, spanContext.isValid else { return }
        injector.inject(W3CTraceContext.traceparent(spanContext), forKey: "traceparent", into: &carrier)
        if !spanContext.traceState.isEmpty { injector.inject(spanContext.traceState, forKey: "tracestate", into: &carrier) }
    }

    static func kind(_ kind: Tracing.SpanKind) -> Resilience.SpanKind {
        switch kind {
        case .server: return .server
        case .client: return .client
        case .producer: return .producer
        case .consumer: return .consumer
        case .internal: return .internal
        }
    }
}
