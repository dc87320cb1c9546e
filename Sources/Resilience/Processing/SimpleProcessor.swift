import Synchronization

/// Exports each record on its own, as it is emitted, and returns the outcome to the caller.
///
/// `end()` and `emit()` block the calling thread until the export finished (the export itself
/// runs on a task of the export executor). For tests and very low volumes; every record costs a
/// request. Do not use it from Swift concurrency's cooperative threads at high rates: each
/// blocked caller holds a thread of the pool. It has no queue: ``queueUsage`` is `(0, 0)`.
final class SimpleProcessor: RecordProcessor {
    private let ledger: Ledger
    private let tasks: ExportTasks
    private let routes: RouteTable
    private let scopes: ScopeRegistry
    private let resource: [UInt8]
    private let sequences = SignalTable { _ in InFlightCounter() }
    /// The batch processor's limit for the same configuration (an eighth of the ring's capacity,
    /// less a record header), so that switching processors changes no record's fate.
    let maximumRecordLength: Int

    init(
        configuration: PipelineConfiguration, routes: RouteTable, scopes: ScopeRegistry, resource: [UInt8], ledger: Ledger,
        tasks: ExportTasks
    ) {
        self.ledger = ledger
        self.tasks = tasks
        self.routes = routes
        self.scopes = scopes
        self.resource = resource
        self.maximumRecordLength = Ring.maximumRecordLength(capacity: configuration.ringCapacity)
    }

    var queueUsage: (bytesInUse: Int, capacity: Int) { (0, 0) }

    func submit(_ record: UnsafeRawBufferPointer, type: Int32) -> EmitResult {
        let signal: TelemetrySignal = type.recordSignal == 1 ? .traces : .logs
        guard record.count <= maximumRecordLength else {
            ledger.droppedAtIntake(
                type: type, .recordTooLarge, detail: "a record of \(record.count) bytes exceeds the maximum of \(maximumRecordLength)")
            return .dropped(.recordTooLarge)
        }
        ledger.accepted(signal, 1)
        let builder = BatchBuilder(signal: signal, expectedBytes: record.count + 64)
        builder.append(scope: type.recordScope, record)
        var batch = builder.build(resource: resource, scopes: scopes.snapshot())
        batch.sequence = UInt64(sequences[signal].value.add(1, ordering: .relaxed).oldValue)
        batch.route = routes.name(type.recordRoute)

        let outcome = OutcomeBox()
        let parker = ThreadParker()
        let (tasks, finished) = (self.tasks, batch)
        tasks.start {
            let result = await tasks.export(finished)
            switch result {
            case .success(let response) where response.rejectedRecords > 0: outcome.value.withLock { $0 = .dropped(.rejected) }
            case .success: outcome.value.withLock { $0 = .exported }
            case .failure(let error): outcome.value.withLock { $0 = .failed(error) }
            }
            parker.unpark()
        }
        while true {
            if let result = outcome.value.withLock({ $0 }) { return result }
            parker.park(nanoseconds: 10_000_000)
        }
    }

    func update(traces: BatchConfiguration, logs: BatchConfiguration) {}

    /// Every record's export ended before its `submit` returned: nothing to wait for.
    func forceFlush() async {}

    /// Exports under way finish; past `deadline`, they are cancelled (their records dropped, `shutdown`).
    func shutdown(deadline: ContinuousClock.Instant) async -> Bool {
        guard ContinuousClock.now >= deadline else { return false }
        tasks.cancelAll()
        return true
    }

    func abandon() { tasks.cancelAll() }
}

private final class OutcomeBox: Sendable {
    let value = Mutex<EmitResult?>(nil)
}
