import Synchronization

/// Builds and sends every ``ExportFailureEvent`` of one pipeline (or of one standalone
/// ``ErrorHandlingExporter``): the one place an event is made, so that every event of every
/// kind carries the same processor, exporter name and time.
///
/// Thread-safety: safe from any thread; sending never blocks (see ``ExportEventDispatcher``).
final class FailureReporter: Sendable {
    let dispatcher: ExportEventDispatcher
    let processor: ProcessorKind
    /// The chain's name; set once the chain is built (the reporter is built before it).
    private let exporter: Mutex<String>
    /// The ``ExportDestination`` whose books this reporter serves; `nil` for the pipeline's exporter.
    let destination: String?

    init(dispatcher: ExportEventDispatcher, processor: ProcessorKind, exporterName: String = "", destination: String? = nil) {
        self.destination = destination
        self.dispatcher = dispatcher
        self.processor = processor
        self.exporter = Mutex(exporterName)
    }

    var exporterName: String {
        get { exporter.withLock { $0 } }
        set { exporter.withLock { $0 = newValue } }
    }

    /// Reports what happened to `records` records of `signal` (`nil`: an unknown number, such as
    /// the records of a damaged frame whose header did not check out).
    func report(
        signal: TelemetrySignal, route: String?, attempt: Int = 0, error: any Error, kind: ExportFailureKind,
        outcome: ExportFailureEvent.Outcome, records: Int?, batch: ExportBatch? = nil, copy: String? = nil
    ) {
        var event = ExportFailureEvent(
            signal: signal, processor: processor, exporterName: exporterName, route: route, attempt: attempt, error: error,
            kind: kind, outcome: outcome, recordCount: records ?? 0, time: nowUnixNano(), batch: batch?.detachedFromRing)
        event.isRecordCountKnown = records != nil
        event.destination = destination
        event.keptCopy = copy
        dispatcher.send(event)
    }

    /// Reports what happened to `batch` (or to `records` of its records).
    func report(
        _ batch: ExportBatch, attempt: Int = 0, error: any Error, kind: ExportFailureKind, outcome: ExportFailureEvent.Outcome,
        records: Int? = nil, copy: String? = nil
    ) {
        report(
            signal: batch.signal, route: batch.route, attempt: attempt, error: error, kind: kind, outcome: outcome,
            records: records ?? batch.recordCount, batch: batch, copy: copy)
    }
}

extension ExportResponse {
    /// The records of a request of `count` that the collector rejected (partial success),
    /// clamped to `0 ... count`: a collector that answers nonsense cannot make the books negative.
    package func rejectedCount(of count: Int) -> Int { min(max(rejectedRecords, 0), count) }
}
