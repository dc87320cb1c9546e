public import Resilience
import Synchronization

/// An exporter that keeps every batch it is given and accepts it.
///
/// For tests of code that emits telemetry: pass it as the pipeline's exporter, then read
/// ``spans`` and ``logRecords`` (decoded on access) or the raw ``batches``.
///
/// Thread-safety: safe from any thread.
public final class RecordingExporter: TelemetryExporter, Sendable {
    /// The exporter name reported in events and metrics.
    public let name: String
    private let recorded = Mutex<[ExportBatch]>([])

    /// - Parameter name: - Default value: `recording`.
    public init(name: String = "recording") {
        self.name = name
    }

    public func export(_ batch: ExportBatch) async throws -> ExportResponse {
        recorded.withLock { $0.append(batch.detachedFromRing) }
        return .accepted
    }

    /// Every batch, in the order the exports started.
    public var batches: [ExportBatch] { recorded.withLock { $0 } }

    /// Every span of every traces batch, decoded.
    public var spans: [DecodedSpan] {
        get throws { try batches.filter { $0.signal == .traces }.flatMap { try OTLPDecoding.spans(from: $0.body) } }
    }

    /// Every log record of every logs batch, decoded.
    public var logRecords: [DecodedLogRecord] {
        get throws { try batches.filter { $0.signal == .logs }.flatMap { try OTLPDecoding.logRecords(from: $0.body) } }
    }

    /// Forgets everything recorded.
    public func reset() { recorded.withLock { $0.removeAll() } }
}

/// An exporter that answers from a script: fails with the given errors in order, then accepts.
///
/// ```swift
/// let exporter = ScriptedExporter([.failure(OTLPExportError(code: .httpStatus, statusCode: 503, message: "")), .success(.accepted)])
/// ```
///
/// Thread-safety: safe from any thread; concurrent calls take the script's steps in turn.
public final class ScriptedExporter: TelemetryExporter, Sendable {
    /// The exporter name reported in events and metrics.
    public let name: String
    private let state: Mutex<(script: [Result<ExportResponse, any Error>], calls: [ExportBatch])>
    private let afterScript: Result<ExportResponse, any Error>

    /// - Parameters:
    ///   - script: One outcome per call, in order.
    ///   - afterScript: The outcome once the script is used up. - Default value: accepted.
    ///   - name: - Default value: `scripted`.
    public init(
        _ script: [Result<ExportResponse, any Error>], afterScript: Result<ExportResponse, any Error> = .success(.accepted),
        name: String = "scripted"
    ) {
        self.state = Mutex((script, []))
        self.afterScript = afterScript
        self.name = name
    }

    /// A script of `count` failures with `error`.
    public convenience init(
        failing count: Int, with error: any Error, then afterScript: Result<ExportResponse, any Error> = .success(.accepted)
    ) {
        self.init(Array(repeating: .failure(error), count: count), afterScript: afterScript)
    }

    public func export(_ batch: ExportBatch) async throws -> ExportResponse {
        let step = state.withLock { state -> Result<ExportResponse, any Error> in
            state.calls.append(batch)
            return state.script.isEmpty ? afterScript : state.script.removeFirst()
        }
        return try step.get()
    }

    /// How often ``export(_:)`` was called.
    public var callCount: Int { state.withLock { $0.calls.count } }

    /// The batches of every call, in order.
    public var calls: [ExportBatch] { state.withLock { $0.calls } }

    /// Steps of the script not used yet.
    public var remainingSteps: Int { state.withLock { $0.script.count } }
}
