public import CoreMetrics
import Synchronization

/// Records the OpenTelemetry SDK self-observability metrics of the exporter it wraps.
///
/// Through swift-metrics (whatever backend the application bootstrapped; the library never
/// bootstraps one), with the names of the OpenTelemetry semantic conventions for SDK metrics:
///
/// | metric | instrument | |
/// |---|---|---|
/// | `otel.sdk.exporter.span.exported`, `otel.sdk.exporter.log.exported` | counter | records; `error.type` set when they failed |
/// | `otel.sdk.exporter.span.inflight`, `otel.sdk.exporter.log.inflight` | meter | records in exports under way |
/// | `otel.sdk.exporter.operation.duration` | timer (seconds) | one per batch, retries included; `error.type` on failure |
///
/// Dimensions: `otel.component.type` (`<name>_span_exporter` / `<name>_log_exporter`, e.g.
/// `otlp_http_span_exporter`), `otel.component.name`, and `error.type`: the HTTP status code,
/// or the ``ExportFailureKind`` (`transport`, `circuit_open`, …).
///
/// Thread-safety: safe to call concurrently.
package struct MeasuredExporter: TelemetryExporter {
    /// The measured stage.
    public let next: any TelemetryExporter
    private let instruments: [Instruments]  // index: signal - 1
    private let componentName: String
    private let factory: any MetricsFactory

    public var name: String { next.name }

    /// Wraps `next`.
    /// - Parameters:
    ///   - componentName: `otel.component.name`. - Default value: `<component type>/0`.
    ///   - factory: - Default value: `MetricsSystem.factory` (what the application bootstrapped).
    public init(wrapping next: any TelemetryExporter, componentName: String? = nil, factory: (any MetricsFactory)? = nil) {
        self.init(wrapping: next, componentName: componentName, instance: "0", factory: factory)
    }

    /// - Parameter instance: the instance part of the default component names
    ///   (`otlp_http_span_exporter/<instance>`): `0` for the pipeline's exporter, an
    ///   ``ExportDestination``'s name for its own.
    init(wrapping next: any TelemetryExporter, componentName: String?, instance: String, factory: (any MetricsFactory)?) {
        self.next = next
        let factory = factory ?? MetricsSystem.factory
        self.factory = factory
        self.componentName = componentName ?? "\(next.name)/\(instance)"
        self.instruments = TelemetrySignal.allCases.map {
            Instruments(signal: $0, exporter: next.name, componentName: componentName, instance: instance, factory: factory)
        }
    }

    public func export(_ batch: ExportBatch) async throws -> ExportResponse {
        let instruments = self.instruments[batch.signal.index]
        let count = batch.recordCount
        instruments.inflight.increment(by: Double(count))
        defer { instruments.inflight.decrement(by: Double(count)) }
        let start = ContinuousClock.now
        do {
            let response = try await next.export(batch)
            let elapsed = start.duration(to: .now)
            let rejected = response.rejectedCount(of: count)
            if count - rejected > 0 { instruments.exported.increment(by: count - rejected) }
            if rejected > 0 { instruments.failure("rejected", factory: factory).exported.increment(by: rejected) }
            instruments.duration.recordNanoseconds(elapsed.nanoseconds)
            return response
        } catch {
            let elapsed = start.duration(to: .now)
            let failure = instruments.failure(Self.errorType(error), factory: factory)
            failure.exported.increment(by: count)
            failure.duration.recordNanoseconds(elapsed.nanoseconds)
            throw error
        }
    }

    /// `error.type`: the HTTP status code when there is one, else the failure kind.
    static func errorType(_ error: any Error) -> String {
        if let error = error as? OTLPExportError, let status = error.statusCode { return "\(status)" }
        return ExportFailureKind.classify(error).rawValue
    }

    public func shutdown() async { await next.shutdown() }

    /// The instruments of one signal; those with `error.type` are made on first use.
    private final class Instruments: Sendable {
        let exported: Counter
        let inflight: Meter
        let duration: Timer
        private let dimensions: [(String, String)]
        private let exportedLabel: String
        private let failures = Mutex<[String: (exported: Counter, duration: Timer)]>([:])

        init(signal: TelemetrySignal, exporter: String, componentName: String?, instance: String, factory: any MetricsFactory) {
            // The semantic conventions' words: `otel.sdk.exporter.span.exported`, `….log.…`,
            // `….metric_data_point.…`.
            let word =
                switch signal {
                case .traces: "span"
                case .logs: "log"
                case .metrics: "metric_data_point"
                }
            let type = "\(exporter)_\(word)_exporter"
            dimensions = [("otel.component.type", type), ("otel.component.name", componentName ?? "\(type)/\(instance)")]
            exportedLabel = "otel.sdk.exporter.\(word).exported"
            exported = Counter(label: exportedLabel, dimensions: dimensions, factory: factory)
            inflight = Meter(label: "otel.sdk.exporter.\(word).inflight", dimensions: dimensions, factory: factory)
            duration = Timer(
                label: "otel.sdk.exporter.operation.duration", dimensions: dimensions, preferredDisplayUnit: .seconds, factory: factory)
        }

        func failure(_ errorType: String, factory: any MetricsFactory) -> (exported: Counter, duration: Timer) {
            failures.withLock { cache in
                if let found = cache[errorType] { return found }
                let dims = dimensions + [("error.type", errorType)]
                let made = (
                    Counter(label: exportedLabel, dimensions: dims, factory: factory),
                    Timer(label: "otel.sdk.exporter.operation.duration", dimensions: dims, preferredDisplayUnit: .seconds, factory: factory)
                )
                cache[errorType] = made
                return made
            }
        }
    }
}
