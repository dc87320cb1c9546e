import Synchronization

/// What the stages of one export share without widening ``TelemetryExporter``: set as a task
/// local by ``ErrorHandlingExporter`` for the duration of one batch's export.
final class ExportAttemptContext: Sendable {
    @TaskLocal static var current: ExportAttemptContext?

    /// Attempts that reached the transport for this batch.
    let attempts = Atomic<Int>(0)
    /// The attempts so far (for events).
    var attempt: Int { attempts.load(ordering: .relaxed) }
    /// Ends retry back-offs at shutdown (a pipeline with a spill store), else `nil`.
    let cutoff: RetryCutoff?
    private let onRetry: @Sendable (ExportBatch, any Error, ExportFailureKind, Int, Duration) -> Void

    init(cutoff: RetryCutoff? = nil, onRetry: @escaping @Sendable (ExportBatch, any Error, ExportFailureKind, Int, Duration) -> Void) {
        self.cutoff = cutoff
        self.onRetry = onRetry
    }

    /// Called by ``RetryingExporter`` before it waits.
    func retryScheduled(batch: ExportBatch, error: any Error, kind: ExportFailureKind, attempt: Int, delay: Duration) {
        onRetry(batch, error, kind, attempt, delay)
    }
}

extension DropReason {
    /// The reason a batch that failed with `kind` is counted under when it is dropped.
    static func forFailure(_ kind: ExportFailureKind) -> DropReason {
        kind == .shutdown ? .shutdown : .exportFailed
    }

    /// The reason for a batch that failed with `error`.
    static func forFailure(_ error: any Error, cancelled: Bool) -> DropReason {
        if let error = error as? ResilienceError {
            if error.code == .diskFull { return .diskFull }
            if error.code == .spillFailed { return .spillFailed }
        }
        return forFailure(cancelled ? .shutdown : ExportFailureKind.classify(error))
    }
}
