import Logging
import Synchronization

/// Tells the application about every failed export, and decides what happens to the batch.
///
/// The outermost stage of a pipeline's chain. On a failure it classifies the error
/// (``ExportFailureKind``), reports an ``ExportFailureEvent`` to the ``ExportErrorHandler``
/// (off the export path: handlers run on their own thread), and then, inside a
/// ``TelemetryPipeline`` with a spill store:
/// - a retryable error, an open breaker or the shutdown deadline spills the batch (replayed
///   when the collector answers); at shutdown the retry stage's back-offs are cut short
///   (``RetryCutoff``), so a failing collector does not hold shutdown for them;
/// - a misconfiguration (401, 403, 404, …) keeps the batch in the store's rejected area,
///   counted as `rejected`, not dropped (replayed after the configuration is fixed);
/// - a permanent error (400, other statuses) drops the batch (reason `export_failed`) and keeps
///   a copy in the store's refused area for inspection; a partial success reports the rejected
///   records (reason `partial_success`) the same way and returns.
///
/// Without a spill store, a retryable error or an open breaker holds the batch in memory (batch
/// processor): the call waits until the breaker lets a probe through (or the retry policy's
/// maximum delay when there is no breaker) and sends the batch again, so the export slot stays
/// busy, the drain thread pauses, and the ring's overflow policy decides what is lost; every
/// other failure drops the batch. Standalone, the batch is dropped and the error rethrown.
/// Cancellation (the pipeline's shutdown deadline) drops the batch (reason `shutdown`) unless a
/// spill store takes it.
///
/// It also reports each retry that the ``RetryingExporter`` inside it schedules (`willRetry`).
///
/// Thread-safety: safe to call concurrently.
package final class ErrorHandlingExporter: TelemetryExporter, Sendable {
    /// The stage whose failures are handled.
    public let next: any TelemetryExporter
    /// Books every outcome and makes every event (the pipeline's, or this stage's own standalone).
    private let ledger: Ledger
    /// Keeps what cannot be delivered now (the spill store), if the pipeline has one.
    private let destination: (any FailureDestination)?
    private let hold: MemoryHold
    /// Ends retry back-offs when the pipeline shuts down (with a destination only).
    private let cutoff: RetryCutoff?
    private let ownsDispatcher: Bool

    public var name: String { next.name }

    /// Wraps `next`; events go to `handler`. Failed batches are dropped and the error rethrown.
    public init(wrapping next: any TelemetryExporter, processor: ProcessorKind = .batch, handler: any ExportErrorHandler) {
        self.next = next
        let logger = Logger(label: "spillway")
        let dispatcher = ExportEventDispatcher(defaultHandler: handler, routeHandlers: [:], logger: logger)
        self.ledger = Ledger(dispatcher: dispatcher, processor: processor, logger: logger, exporterName: next.name)
        self.destination = nil
        self.hold = MemoryHold(holds: false)
        self.cutoff = nil
        self.ownsDispatcher = true
    }

    /// Inside a pipeline: outcomes go to the pipeline's ledger, what cannot be delivered now to
    /// `destination` (or, without one, waits in memory as `hold` says); `cutoff` ends the retry
    /// stage's back-offs at shutdown.
    init(
        wrapping next: any TelemetryExporter, ledger: Ledger, destination: (any FailureDestination)?, hold: MemoryHold,
        cutoff: RetryCutoff? = nil
    ) {
        self.next = next
        self.ledger = ledger
        self.destination = destination
        self.hold = hold
        self.cutoff = cutoff
        self.ownsDispatcher = false
    }

    deinit {
        if ownsDispatcher { ledger.reporter.dispatcher.stop() }
    }

    public func export(_ batch: ExportBatch) async throws -> ExportResponse {
        let ledger = self.ledger
        // Standalone, this stage is its ledger's intake: every batch it is given is accepted here.
        if ownsDispatcher { ledger.accepted(batch.signal, batch.recordCount) }
        let context = ExportAttemptContext(cutoff: cutoff) { batch, error, kind, attempt, delay in
            ledger.willRetry(batch, attempt: attempt, error: error, kind: kind, after: delay)
        }
        while true {
            do {
                let response = try await ExportAttemptContext.$current.withValue(context) { try await next.export(batch) }
                ledger.delivered(batch, response, attempt: context.attempt) { message in
                    destination?.keepCopy(batch, status: nil, kind: .permanent, message: message)
                }
                return response
            } catch {
                var kind = ExportFailureKind.classify(error)
                if Task.isCancelled { kind = .shutdown }
                if kind == .misconfigured { ledger.misconfigured(ExportFailureKind.describe(error)) }
                let status = (error as? OTLPExportError)?.statusCode
                if let destination {
                    // The destination takes what cannot be delivered now, and what shutdown cuts off.
                    let custody: ExportResponse.Custody?
                    do throws(ResilienceError) {
                        custody = try destination.keep(
                            batch, kind: kind, status: status, message: ExportFailureKind.describe(error))
                    } catch let failure {
                        ledger.dropped(
                            batch, failure.code == .diskFull ? .diskFull : .spillFailed, attempt: context.attempt, error: failure,
                            kind: kind)
                        throw failure
                    }
                    if let custody {
                        ledger.kept(batch, custody, attempt: context.attempt, error: error, kind: kind)
                        var response = ExportResponse()
                        response.custody = custody
                        return response
                    }
                }
                // A batch with an export deadline (a metrics request) is not held past it: the
                // metric reader keeps the requests behind it in order, in its own queue.
                let pastDeadline = ExportDeadline.current.map { ContinuousClock.now >= $0 } ?? false
                guard hold.holds && !pastDeadline && (kind.isRetryable || kind == .circuitOpen) else {
                    let copy = kind == .permanent ? destination?.keepCopy(batch, status: status, kind: kind, message: "\(error)") : nil
                    ledger.dropped(batch, DropReason.forFailure(kind), attempt: context.attempt, error: error, kind: kind, copy: copy)
                    throw error
                }
                // The breaker's reopening time, else the hold's pause; the collector's
                // Retry-After is a floor on either.
                var wait = (error as? ResilienceError)?.retryAfter ?? hold.delay()
                let collectorError = (error as? OTLPExportError) ?? ((error as? ResilienceError)?.cause as? OTLPExportError)
                if let floor = collectorError?.retryAfterDelay(), floor > wait { wait = floor }
                if let deadline = ExportDeadline.current { wait = min(wait, ContinuousClock.now.duration(to: deadline)) }
                ledger.heldInMemory(batch, attempt: context.attempt, error: error, kind: kind, wait: wait)
                defer { ledger.releasedFromMemory() }
                do {
                    try await hold.sleep(wait)
                } catch {
                    let cancelled = ResilienceError(code: .shutDown, message: "the pipeline shut down while the batch waited in memory")
                    ledger.dropped(batch, .shutdown, attempt: context.attempt, error: cancelled, kind: .shutdown)
                    throw cancelled
                }
            }
        }
    }

    public func shutdown() async { await next.shutdown() }
}

/// Whether, without a failure destination, a batch that cannot be delivered now waits in memory
/// (batch processor) or is dropped (simple processor, standalone), and for how long it waits.
struct MemoryHold: Sendable {
    var holds: Bool
    /// How long a held batch waits before it is sent again.
    var delay: @Sendable () -> Duration = { .seconds(1) }
    var sleep: @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
}
