import Logging
import Synchronization

/// Tells the application about every failed export, and decides what happens to the batch.
///
/// The outermost stage of a pipeline's chain. On a failure it classifies the error
/// (``ExportFailureKind``), reports an ``ExportFailureEvent`` to the ``ExportErrorHandler``
/// (off the export path: handlers run on their own thread), and then:
/// - a permanent error drops the batch (reason `export_failed`); a partial success reports the
///   rejected records (reason `partial_success`) and returns;
/// - a retryable error or an open breaker goes to the failure destination. Inside a
///   ``TelemetryPipeline`` (no spill store yet) that is memory: the call waits until the breaker
///   lets a probe through (or the retry policy's maximum delay when there is no breaker) and
///   sends the batch again, so the export slot stays busy, the drain thread pauses, and the ring's
///   overflow policy decides what is lost. Standalone, the batch is dropped and the error rethrown.
/// - cancellation (the pipeline's shutdown deadline) drops the batch (reason `shutdown`).
///
/// It also reports each retry that the ``RetryingExporter`` inside it schedules (`willRetry`).
///
/// Thread-safety: safe to call concurrently.
public final class ErrorHandlingExporter: TelemetryExporter, Sendable {
    /// The stage whose failures are handled.
    public let next: any TelemetryExporter
    private let processor: ProcessorKind
    private let dispatcher: ExportEventDispatcher
    private let destination: FailureDestination
    private let ownsDispatcher: Bool

    public var name: String { next.name }

    /// Wraps `next`; events go to `handler`. Failed batches are dropped and the error rethrown.
    public init(wrapping next: any TelemetryExporter, processor: ProcessorKind = .batch, handler: any ExportErrorHandler) {
        self.next = next
        self.processor = processor
        self.dispatcher = ExportEventDispatcher(defaultHandler: handler, routeHandlers: [:], logger: .init(label: "spillway"))
        self.destination = FailureDestination(mode: .drop)
        self.ownsDispatcher = true
    }

    init(wrapping next: any TelemetryExporter, processor: ProcessorKind, dispatcher: ExportEventDispatcher, destination: FailureDestination) {
        self.next = next
        self.processor = processor
        self.dispatcher = dispatcher
        self.destination = destination
        self.ownsDispatcher = false
    }

    deinit {
        if ownsDispatcher { dispatcher.stop() }
    }

    public func export(_ batch: ExportBatch) async throws -> ExportResponse {
        let (dispatcher, processor, name, destination) = (self.dispatcher, self.processor, next.name, self.destination)
        let context = ExportAttemptContext { batch, error, kind, attempt, delay in
            dispatcher.send(ExportFailureEvent(
                signal: batch.signal, processor: processor, exporterName: name, route: batch.route, attempt: attempt,
                error: error, kind: kind, outcome: .willRetry(after: delay), recordCount: batch.recordCount,
                time: nowUnixNano(), batch: batch))
            destination.retried()
        }
        while true {
            do {
                let response = try await ExportAttemptContext.$current.withValue(context) { try await next.export(batch) }
                let rejected = min(max(response.rejectedRecords, 0), batch.recordCount)
                if rejected > 0 {
                    let error = ResilienceError(code: .partiallyRejected, message: response.errorMessage.isEmpty ? "the collector rejected \(rejected) records" : response.errorMessage)
                    report(batch, context, error, .permanent, .dropped(.rejected), count: rejected)
                }
                return response
            } catch {
                var kind = ExportFailureKind.classify(error)
                if Task.isCancelled { kind = .shutdown }
                if let store = destination.store, kind.isRetryable || kind == .circuitOpen || kind == .shutdown {
                    // The spill store takes what cannot be delivered now, and what shutdown cuts off.
                    return try spill(batch, to: store, context, error, kind)
                }
                let holds = destination.mode == .holdInMemory && (kind.isRetryable || kind == .circuitOpen)
                guard holds else {
                    report(batch, context, error, kind, .dropped(DropReason.forFailure(kind)), count: batch.recordCount)
                    throw error
                }
                // The breaker's reopening time, else the destination's pause; the collector's
                // Retry-After is a floor on either.
                var wait = (error as? ResilienceError)?.retryAfter ?? destination.holdDelay()
                let collectorError = (error as? OTLPExportError) ?? ((error as? ResilienceError)?.cause as? OTLPExportError)
                if let floor = collectorError?.retryAfterDelay(), floor > wait { wait = floor }
                report(batch, context, error, kind, .heldInMemory(retryAfter: wait), count: batch.recordCount)
                destination.held(1)
                defer { destination.held(-1) }
                do {
                    try await destination.sleep(wait)
                } catch {
                    let cancelled = ResilienceError(code: .shutDown, message: "the pipeline shut down while the batch waited in memory")
                    report(batch, context, cancelled, .shutdown, .dropped(.shutdown), count: batch.recordCount)
                    throw cancelled
                }
            }
        }
    }

    private func spill(
        _ batch: ExportBatch, to store: SpillStore, _ context: ExportAttemptContext, _ error: any Error, _ kind: ExportFailureKind
    ) throws -> ExportResponse {
        do {
            let segment = try store.append(batch)
            report(batch, context, error, kind, .spilled(segment: segment), count: batch.recordCount)
            var response = ExportResponse()
            response.spilledSegment = segment
            return response
        } catch {
            let reason: DropReason = error.isDiskFull ? .diskFull : .spillFailed
            let failure = ResilienceError(
                code: error.isDiskFull ? .diskFull : .spillFailed, message: "the spill store could not write the batch: \(error.message)",
                cause: error)
            report(batch, context, failure, kind, .dropped(reason), count: batch.recordCount)
            throw failure
        }
    }

    private func report(
        _ batch: ExportBatch, _ context: ExportAttemptContext, _ error: any Error, _ kind: ExportFailureKind,
        _ outcome: ExportFailureEvent.Outcome, count: Int
    ) {
        dispatcher.send(ExportFailureEvent(
            signal: batch.signal, processor: processor, exporterName: next.name, route: batch.route,
            attempt: context.attempts.load(ordering: .relaxed), error: error, kind: kind, outcome: outcome,
            recordCount: count, time: nowUnixNano(), batch: batch))
    }

    public func shutdown() async { await next.shutdown() }
}

/// Where a batch goes when it cannot be exported now.
struct FailureDestination: Sendable {
    enum Mode: Sendable { case drop, holdInMemory }
    var mode: Mode
    /// With a spill store, batches that cannot be delivered now go to disk instead of waiting.
    var store: SpillStore? = nil
    /// How long a held batch waits before it is sent again.
    var holdDelay: @Sendable () -> Duration = { .seconds(1) }
    var sleep: @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    /// +1 when a batch starts waiting in memory, -1 when it stops.
    var held: @Sendable (Int) -> Void = { _ in }
    /// A retry was scheduled.
    var retried: @Sendable () -> Void = {}
}
