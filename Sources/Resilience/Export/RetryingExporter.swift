/// Sends a batch again when it failed for a reason the OTLP specification calls retryable.
///
/// HTTP 429, 502, 503 and 504, refused or reset connections and timeouts are retried after the
/// delay of its ``ExportRetryPolicy``; a `Retry-After` header (delta-seconds or HTTP-date) is a
/// floor on that delay. Every other failure — other statuses, a response that is not OTLP, an
/// open circuit breaker — is rethrown at once. When the policy's budget is spent, the last error
/// is rethrown. Cancelling the calling task ends the loop at once (the pipeline cancels exports
/// when its shutdown deadline passes).
///
/// Exactly one stage of a chain should retry: put this one outside the ``CircuitBreakingExporter``
/// so the breaker counts every attempt and an open breaker ends the loop.
///
/// A batch exported with an ``ExportDeadline`` is not retried past it (the metric reader's
/// ``PipelineConfiguration/Metrics/exportTimeout``). Inside a pipeline with a spill store, shutdown
/// cuts the back-offs short (``RetryCutoff``): a waiting batch is sent once more at once, and a
/// failed attempt that began after the cut is not retried, so the batch goes to the store.
///
/// Thread-safety: safe to call concurrently; each call keeps its own attempt count.
package struct RetryingExporter<C: Clock>: TelemetryExporter where C.Duration == Duration {
    /// The stage that is retried.
    public let next: any TelemetryExporter
    /// When to retry.
    public let policy: ExportRetryPolicy
    private let clock: C

    public var name: String { next.name }

    /// Wraps `next`; waits on `clock` (a test clock in tests).
    public init(wrapping next: any TelemetryExporter, policy: ExportRetryPolicy = ExportRetryPolicy(), clock: C) {
        self.next = next
        self.policy = policy
        self.clock = clock
    }

    public func export(_ batch: ExportBatch) async throws -> ExportResponse {
        let start = clock.now
        var generator = SystemRandomNumberGenerator()
        let cutoff = ExportAttemptContext.current?.cutoff
        var attempt = 1
        while true {
            let afterCut = cutoff?.isCut == true
            do {
                return try await next.export(batch)
            } catch {
                let kind = ExportFailureKind.classify(error)
                guard kind.isRetryable, !Task.isCancelled, !afterCut else { throw error }
                if let limit = policy.maximumAttempts, attempt >= limit { throw error }
                var delay = policy.delay(forRetry: attempt, using: &generator)
                if let floor = (error as? OTLPExportError)?.retryAfterDelay(), floor > delay { delay = floor }
                // Cut while this attempt was under way: the one more attempt goes at once, and the
                // handlers are told so (not a back-off that will not be waited).
                if cutoff?.isCut == true { delay = .zero }
                if let budget = policy.maximumElapsedTime, start.duration(to: clock.now) + delay > budget { throw error }
                if let deadline = ExportDeadline.current, ContinuousClock.now + delay > deadline { throw error }
                ExportAttemptContext.current?.retryScheduled(batch: batch, error: error, kind: kind, attempt: attempt, delay: delay)
                do {
                    if let cutoff {
                        _ = try await cutoff.sleep(for: delay, on: clock)
                    } else {
                        try await clock.sleep(for: delay)
                    }
                } catch {
                    throw ResilienceError(code: .shutDown, message: "retry \(attempt + 1) cancelled while waiting \(delay)")
                }
                attempt += 1
            }
        }
    }

    public func shutdown() async { await next.shutdown() }
}

extension RetryingExporter where C == ContinuousClock {
    /// Wraps `next`; waits on the continuous clock.
    package init(wrapping next: any TelemetryExporter, policy: ExportRetryPolicy = ExportRetryPolicy()) {
        self.init(wrapping: next, policy: policy, clock: ContinuousClock())
    }
}

/// The time by which one batch's export must end, set as a task local around it by a caller
/// with a deadline of its own (the metric reader's `OTEL_METRIC_EXPORT_TIMEOUT`): no retry is
/// scheduled past it, so the batch goes on to its failure destination (the spill store, or a
/// drop told to the handlers) instead of holding back the requests behind it.
enum ExportDeadline {
    @TaskLocal static var current: ContinuousClock.Instant?
}
