/// Why records were dropped. Every drop in the pipeline is counted under one of these.
///
/// The raw values are the `error.type`-style strings used in stats, logs and metrics.
public struct DropReason: Sendable, Hashable, CustomStringConvertible {
    /// The `error.type`-style name: `ring_full`, `shutdown`, …
    public let rawValue: String

    @inlinable
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// The ring was full and the overflow policy dropped the record (`ring_full`).
    public static let ringFull = DropReason("ring_full")
    /// The encoded record was larger than the ring's maximum record (`record_too_large`).
    public static let recordTooLarge = DropReason("record_too_large")
    /// The export failed and nothing else took the batch (`export_failed`).
    public static let exportFailed = DropReason("export_failed")
    /// The collector accepted the request but rejected these records (`partial_success`).
    public static let rejected = DropReason("partial_success")
    /// Emitted after shutdown began, or still unexported at the shutdown deadline (`shutdown`).
    public static let shutdown = DropReason("shutdown")
    /// Deleted from the spill store by its retention limits (`retention`).
    public static let retention = DropReason("retention")
    /// The spill store could not write the batch: the disk is full (`disk_full`).
    public static let diskFull = DropReason("disk_full")
    /// The spill store could not write the batch for another reason than a full disk (`spill_failed`).
    public static let spillFailed = DropReason("spill_failed")
    /// A frame in the spill store was damaged (CRC, zstd) when read back (`corrupt`).
    public static let corrupt = DropReason("corrupt")
    /// Every export slot of a route's destination was busy and there was no spill store to keep
    /// its copy: dropped so that the route's other destinations, and the other routes, went on
    /// (`destination_busy`; ``ExportDestination``).
    public static let destinationBusy = DropReason("destination_busy")
    /// Collected metric requests waited in memory for the collector, without a spill store, past
    /// ``PipelineConfiguration/Metrics/maxQueuedRequests``: the oldest went (`queue_full`).
    public static let queueFull = DropReason("queue_full")
    /// `end()` on a span that had already ended (not counted in stats: nothing was emitted).
    public static let alreadyEnded = DropReason("already_ended")
    /// The span was not sampled, or the SDK is disabled (not counted in stats: nothing was emitted).
    public static let notRecorded = DropReason("not_recorded")

    public var description: String { rawValue }
}
