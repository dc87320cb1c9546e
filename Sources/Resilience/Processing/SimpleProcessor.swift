import Synchronization

/// Exports each record on its own, as it is emitted, and returns the outcome to the caller.
///
/// `end()` and `emit()` block the calling thread until the export finished (the export itself
/// runs on a detached task). For tests and very low volumes; every record costs a request.
/// Do not use it from Swift concurrency's cooperative threads at high rates: each blocked
/// caller holds a thread of the pool.
final class SimpleProcessor: @unchecked Sendable {
    /// Unowned: the core owns this processor.
    private unowned let core: PipelineCore
    private let sequences = SignalTable { _ in InFlightCounter() }

    init(core: PipelineCore) {
        self.core = core
    }

    func export(_ buffer: ScratchBuffer, type: Int32) -> EmitResult {
        let signal: TelemetrySignal = type.recordSignal == 1 ? .traces : .logs
        guard buffer.count <= core.ring.maximumRecordLength else {
            return core.drop(
                type: type, .recordTooLarge,
                detail: "a record of \(buffer.count) bytes exceeds the maximum of \(core.ring.maximumRecordLength)")
        }
        core.ledger.accepted(signal, 1)
        let builder = BatchBuilder(signal: signal, expectedBytes: buffer.count + 64)
        builder.append(scope: type.recordScope, UnsafeRawBufferPointer(start: buffer.base, count: buffer.count))
        var batch = builder.build(resource: core.resource, scopes: core.scopes.snapshot())
        batch.sequence = UInt64(sequences[signal].value.add(1, ordering: .relaxed).oldValue)
        batch.route = core.routes.name(type.recordRoute)

        let outcome = OutcomeBox()
        let parker = ThreadParker()
        let core = self.core
        let finished = batch
        core.startExport {
            let result = await core.export(finished)
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
}

private final class OutcomeBox: Sendable {
    let value = Mutex<EmitResult?>(nil)
}
