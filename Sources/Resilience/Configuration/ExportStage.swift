/// A stage of your own in the exporter chain: a function from the next exporter to yours.
///
/// ```swift
/// // Signs every request, retries included:
/// configuration.exportStages = [.perAttempt { next in SigningExporter(wrapping: next) }]
/// ```
public struct ExportStage: Sendable {
    /// Where the stage sits relative to the retry stage.
    public enum Placement: Sendable, Hashable {
        /// Outside the retry loop: sees each batch once, and its final outcome.
        case perBatch
        /// Inside the retry loop, outside the circuit breaker: sees every attempt.
        case perAttempt
    }

    /// Where it sits.
    public let placement: Placement
    let wrap: @Sendable (any TelemetryExporter) -> any TelemetryExporter

    /// A stage outside the retry loop.
    public static func perBatch(_ wrap: @escaping @Sendable (any TelemetryExporter) -> any TelemetryExporter) -> ExportStage {
        ExportStage(placement: .perBatch, wrap: wrap)
    }

    /// A stage inside the retry loop.
    public static func perAttempt(_ wrap: @escaping @Sendable (any TelemetryExporter) -> any TelemetryExporter) -> ExportStage {
        ExportStage(placement: .perAttempt, wrap: wrap)
    }
}
