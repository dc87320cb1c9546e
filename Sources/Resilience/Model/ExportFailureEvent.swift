/// One failure, or one drop, and what happens to the records because of it.
///
/// Delivered to ``ExportErrorHandler``s and to ``TelemetryPipeline/exportFailures``. Every record
/// the pipeline drops is covered by exactly one event whose ``outcome`` is
/// ``Outcome/dropped(_:)``; drops at intake (a full ring, a record too large, after shutdown)
/// are gathered into one event per route, signal and reason at most every 100 ms.
public struct ExportFailureEvent: Sendable, CustomStringConvertible {
    /// What happens to the records now.
    public enum Outcome: Sendable, Hashable, CustomStringConvertible {
        /// The retry stage sends the batch again after this delay.
        case willRetry(after: Duration)
        /// Retries are spent or the breaker is open: the batch waits in memory and is sent
        /// again after this delay (when the breaker lets a probe through). The export slot
        /// stays busy, so the ring fills and its overflow policy applies.
        case heldInMemory(retryAfter: Duration)
        /// Written to this spill segment (the spill store), replayed when the collector answers.
        case spilled(segment: String)
        /// The collector refused the client's configuration (``ExportFailureKind/misconfigured``):
        /// written to this segment of the spill store's rejected area, and replayed once the
        /// configuration changed or a probe succeeded. Counted in ``PipelineStats/Signal/rejected``.
        case rejected(segment: String)
        /// Gone, counted under this reason in ``PipelineStats``.
        case dropped(DropReason)

        public var description: String {
            switch self {
            case .willRetry(let t): return "will retry after \(t)"
            case .heldInMemory(let t): return "held in memory, sent again after \(t)"
            case .spilled(let segment): return "spilled to \(segment)"
            case .rejected(let segment): return "kept in the rejected area, \(segment)"
            case .dropped(let reason): return "dropped (\(reason))"
            }
        }
    }

    /// Spans or log records.
    public var signal: TelemetrySignal
    /// The processor that handled the records.
    public var processor: ProcessorKind
    /// The exporter's ``TelemetryExporter/name``.
    public var exporterName: String
    /// The route of the records (see ``ExportRoute``); `nil` for the default route.
    public var route: String?
    /// The ``ExportDestination`` the records were going to; `nil` for the pipeline's own exporter.
    public var destination: String?
    /// Attempts made so far for this batch (0 when the exporter was never called).
    public var attempt: Int
    /// What went wrong.
    public var error: any Error
    /// How the error was classified.
    public var kind: ExportFailureKind
    /// What happens to the records now.
    public var outcome: Outcome
    /// The records concerned (0 when ``isRecordCountKnown`` is `false`).
    public var recordCount: Int
    /// `false` when the records are lost in damage whose record count cannot be read (a spill
    /// frame whose header is damaged): ``recordCount`` is then 0, and the count is unknown.
    public var isRecordCountKnown = true
    /// With a spill store, when the collector refused the data itself (400, a partial success):
    /// the segment of the store's refused area that keeps a copy of the request, for inspection
    /// (`spillway inspect`, `spillway replay --rejected`). The records are counted as dropped.
    public var keptCopy: String?
    /// Unix nanoseconds.
    public var time: UInt64
    /// The request that failed, when the records still exist: `nil` for intake drops (those
    /// records were never stored), and when ``isBatchOmitted``.
    public var batch: ExportBatch?
    /// `true` when the event was queued without its ``batch`` because the events waiting for a
    /// handler (or for the stream's consumer) already held 8 MiB of batches. What happened to the
    /// records is unchanged: this only bounds the memory the events keep (see
    /// ``PipelineStats/handlerBatchesOmitted``).
    public var isBatchOmitted = false

    public var description: String {
        let count = isRecordCountKnown ? "\(recordCount)" : "an unknown number of"
        let copy = keptCopy.map { "; a copy is kept in \($0)" } ?? ""
        return
            "\(count) \(signal) records\(route.map { " (route \($0))" } ?? "")\(destination.map { " to \($0)" } ?? "") "
            + "via \(exporterName), attempt \(attempt): \(kind): "
            + "\(error); \(outcome)\(copy)"
    }
}

/// Receives export failures and drops: the application's say in what is reported where.
///
/// Implementers: calls come one at a time from one pipeline thread, off the export path — a
/// slow handler delays only later events (the queue keeps the newest 4096; what it loses is
/// counted in ``PipelineStats/handlerEventsLost``), never an export. An error thrown is logged
/// and counted (``PipelineStats/handlerErrors``), nothing else.
public protocol ExportErrorHandler: Sendable {
    /// Called once per event.
    func handleExportError(_ event: ExportFailureEvent) throws
}

/// An ``ExportErrorHandler`` made of a closure.
///
/// ```swift
/// configuration.exportErrorHandler = ClosureExportErrorHandler { event in
///     logger.error("telemetry: \(event)")
/// }
/// ```
public struct ClosureExportErrorHandler: ExportErrorHandler {
    private let body: @Sendable (ExportFailureEvent) throws -> Void

    /// A handler that calls `body` for each event (on the pipeline's handler thread).
    public init(_ body: @escaping @Sendable (ExportFailureEvent) throws -> Void) {
        self.body = body
    }

    public func handleExportError(_ event: ExportFailureEvent) throws {
        try body(event)
    }
}
