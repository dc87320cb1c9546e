/// Takes each encoded record from the ``Intake`` and sees it through to an outcome: the
/// ``BatchProcessor`` (a ring and a drain thread that batches) or the ``SimpleProcessor`` (one
/// request per record, on the caller's thread).
///
/// Built by ``TelemetryPipeline`` from the bottom up, before the intake that calls it: a
/// processor holds what it uses (ring, ledger, export tasks, failure destination) and nothing
/// holds it back except the intake and the pipeline.
///
/// Thread-safety: ``submit(_:type:)`` is called from any thread, concurrently; the rest from
/// the pipeline.
protocol RecordProcessor: AnyObject, Sendable {
    /// Takes one encoded record of `type` (``RecordType``) on the producer's thread. Every record
    /// it does not queue or export is booked as dropped by the ledger before it returns. With a
    /// ring, the intake writes there itself and calls this only when the ring did not take the
    /// record (full, or too large): the processor then applies the overflow policy.
    func submit(_ record: UnsafeRawBufferPointer, type: Int32) -> EmitResult

    /// New batch sizes and delays (live reconfiguration). Nothing for a processor without batches.
    func update(traces: BatchConfiguration, logs: BatchConfiguration)

    /// Returns when everything submitted before the call has been exported, kept or dropped.
    func forceFlush() async

    /// Stops taking work and finishes what it holds: exported before `deadline` when it can,
    /// otherwise kept by the failure destination or dropped (`shutdown`). Returns whether the
    /// deadline passed first. Called once, after the intake closed.
    func shutdown(deadline: ContinuousClock.Instant) async -> Bool

    /// Stops at once, for a pipeline released without ``shutdown(deadline:)``.
    func abandon()

    /// Bytes queued and the queue's capacity (both 0 for a processor without a queue).
    var queueUsage: (bytesInUse: Int, capacity: Int) { get }

    /// The largest record ``submit(_:type:)`` takes.
    var maximumRecordLength: Int { get }
}
