import Synchronization

/// Whether the pipeline is delivering, in three levels, with the reasons.
///
/// The rules, over a look-back window (default 60 s):
///
/// - ``unhealthy(_:)``: records were dropped within the window (``HealthReason/droppingRecords``),
///   the collector refuses the client's configuration (``HealthReason/misconfigured``;
///   ``PipelineStats/misconfiguration`` says how), or the circuit breaker is open while no spill
///   store keeps what arrives (``HealthReason/collectorDown``).
/// - ``degraded(_:)``: a retry happened within the window (``HealthReason/retrying``), batches wait
///   in memory (``HealthReason/holdingBatches``), the breaker is half-open (``HealthReason/probing``)
///   or open while a spill store takes the batches (``HealthReason/spilling``), records wait on
///   disk for replay (``HealthReason/backlog``), or the ring is at least half full
///   (``HealthReason/ringFilling``).
/// - ``healthy``: none of these.
public enum PipelineHealth: Sendable, Hashable, CustomStringConvertible {
    case healthy
    case degraded([HealthReason])
    case unhealthy([HealthReason])

    /// The reasons, empty when healthy.
    public var reasons: [HealthReason] {
        switch self {
        case .healthy: return []
        case .degraded(let r), .unhealthy(let r): return r
        }
    }

    public var description: String {
        switch self {
        case .healthy: return "healthy"
        case .degraded(let r): return "degraded: " + r.map(\.rawValue).joined(separator: ", ")
        case .unhealthy(let r): return "unhealthy: " + r.map(\.rawValue).joined(separator: ", ")
        }
    }
}

/// Why the pipeline is not ``PipelineHealth/healthy``.
public struct HealthReason: Sendable, Hashable, CustomStringConvertible {
    /// The stable name.
    public let rawValue: String
    private init(_ rawValue: String) { self.rawValue = rawValue }

    /// Records were dropped within the window (any ``DropReason``).
    public static let droppingRecords = HealthReason("dropping_records")
    /// The breaker is open and nothing but the ring holds new records.
    public static let collectorDown = HealthReason("collector_down")
    /// The collector refuses the client's configuration (401, 403, 404, …): nothing is delivered
    /// until the configuration is fixed. With a spill store the batches wait on disk.
    public static let misconfigured = HealthReason("misconfigured")
    /// Exports needed retries within the window.
    public static let retrying = HealthReason("retrying")
    /// Batches wait in memory for the collector; the drain thread is paused.
    public static let holdingBatches = HealthReason("holding_batches")
    /// The breaker lets one probe through.
    public static let probing = HealthReason("probing")
    /// The breaker is open and what cannot be delivered goes to the spill store.
    public static let spilling = HealthReason("spilling")
    /// Records wait in the spill store for replay.
    public static let backlog = HealthReason("backlog")
    /// A collector of the pool is down (its breaker is open or probing); the others take its share.
    public static let collectorUnavailable = HealthReason("collector_unavailable")
    /// The ring is at least half full.
    public static let ringFilling = HealthReason("ring_filling")

    public var description: String { rawValue }
}
