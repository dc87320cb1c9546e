import Synchronization

/// The pipeline's books, one set per signal. Only the ``Ledger`` writes them. Producers touch
/// them only when they drop; the drain thread and export tasks own the rest. Relaxed atomics:
/// counts, not synchronization.
final class SignalCounters: Sendable {
    /// Records the drain thread took from the ring (or the simple processor received).
    let accepted = Atomic<Int>(0)
    /// Accepted records not yet settled (exported, kept on disk or dropped): the pipeline's own
    /// count of what it holds in memory, kept beside the derived ``PipelineStats/Signal/pending``
    /// so that the two can be checked against each other (``Ledger/checkBooks()``).
    let inMemory = Atomic<Int>(0)
    /// Records refused at intake because the pipeline was shutting down (emitted, never accepted).
    let shutdownAtIntake = Atomic<Int>(0)
    let exported = Atomic<Int>(0)
    let ringFull = Atomic<Int>(0)
    let recordTooLarge = Atomic<Int>(0)
    let exportFailed = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let shutdown = Atomic<Int>(0)
    let retention = Atomic<Int>(0)
    let diskFull = Atomic<Int>(0)
    let spillFailed = Atomic<Int>(0)
    let corrupt = Atomic<Int>(0)
    let destinationBusy = Atomic<Int>(0)
    let queueFull = Atomic<Int>(0)
    /// Records written to the spill store.
    let spilled = Atomic<Int>(0)
    /// Records written to the spill store's rejected area (the collector refused the configuration).
    let rejectedKept = Atomic<Int>(0)
    /// Records read back from the spill store and acknowledged by the collector (also in `exported`).
    let replayed = Atomic<Int>(0)
    /// Records found on disk at start-up, left by an earlier process.
    let recovered = Atomic<Int>(0)
    /// Handed to other destinations (``Ledger/forwarded(_:)``).
    let forwarded = Atomic<Int>(0)

    func drop(_ reason: DropReason, _ n: Int) {
        switch reason {
        case .ringFull: ringFull.add(n, ordering: .relaxed)
        case .recordTooLarge: recordTooLarge.add(n, ordering: .relaxed)
        case .exportFailed: exportFailed.add(n, ordering: .relaxed)
        case .rejected: rejected.add(n, ordering: .relaxed)
        case .shutdown: shutdown.add(n, ordering: .relaxed)
        case .retention: retention.add(n, ordering: .relaxed)
        case .diskFull: diskFull.add(n, ordering: .relaxed)
        case .spillFailed: spillFailed.add(n, ordering: .relaxed)
        case .corrupt: corrupt.add(n, ordering: .relaxed)
        case .destinationBusy: destinationBusy.add(n, ordering: .relaxed)
        case .queueFull: queueFull.add(n, ordering: .relaxed)
        default: assertionFailure("\(reason) has no counter: its records would be missing from the books")
        }
    }

    /// Drops that happened before a record reached the ring (they count as emitted too).
    var droppedAtIntake: Int {
        ringFull.load(ordering: .relaxed) + recordTooLarge.load(ordering: .relaxed) + shutdownAtIntake.load(ordering: .relaxed)
    }

    /// The counts; `onDisk` and `rejectedOnDisk` are the spill store's books at this moment.
    func snapshot(onDisk: Int = 0, rejectedOnDisk: Int = 0) -> PipelineStats.Signal {
        var dropped: [DropReason: Int] = [:]
        func note(_ reason: DropReason, _ n: Int) { if n > 0 { dropped[reason] = n } }
        note(.ringFull, ringFull.load(ordering: .relaxed))
        note(.recordTooLarge, recordTooLarge.load(ordering: .relaxed))
        note(.exportFailed, exportFailed.load(ordering: .relaxed))
        note(.rejected, rejected.load(ordering: .relaxed))
        note(.shutdown, shutdown.load(ordering: .relaxed))
        note(.retention, retention.load(ordering: .relaxed))
        note(.diskFull, diskFull.load(ordering: .relaxed))
        note(.spillFailed, spillFailed.load(ordering: .relaxed))
        note(.corrupt, corrupt.load(ordering: .relaxed))
        note(.destinationBusy, destinationBusy.load(ordering: .relaxed))
        note(.queueFull, queueFull.load(ordering: .relaxed))
        return PipelineStats.Signal(
            emitted: accepted.load(ordering: .relaxed) + droppedAtIntake, exported: exported.load(ordering: .relaxed), dropped: dropped,
            spilled: spilled.load(ordering: .relaxed), replayed: replayed.load(ordering: .relaxed),
            recovered: recovered.load(ordering: .relaxed), rejected: rejectedKept.load(ordering: .relaxed), onDisk: onDisk,
            rejectedOnDisk: rejectedOnDisk, forwarded: forwarded.load(ordering: .relaxed))
    }
}

/// Export outcomes across both signals.
final class ExportCounters: Sendable {
    let attempts = Atomic<Int>(0)
    let successes = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    let lastSuccess = Atomic<UInt64>(0)
    let lastFailure = Atomic<UInt64>(0)
    let lastError = Mutex<String?>(nil)
    let lastSuccessMonotonic = Atomic<UInt64>(0)
    let lastFailureMonotonic = Atomic<UInt64>(0)
    let lastDropMonotonic = Atomic<UInt64>(0)
    let lastRetryMonotonic = Atomic<UInt64>(0)
    /// Retries scheduled by the retry stage.
    let retries = Atomic<Int>(0)
    /// Batches waiting in memory for the collector right now.
    let held = Atomic<Int>(0)
    /// The last misconfiguration the collector reported (status and message), cleared by the
    /// next successful export.
    let misconfiguration = Mutex<String?>(nil)
}
