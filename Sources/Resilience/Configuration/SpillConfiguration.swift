/// Where and how batches that cannot be delivered now are kept on disk.
///
/// With a spill store, the failure destination of the exporter chain is the disk: a batch whose
/// retries are spent, or that the open circuit breaker refused, is written as one frame (zstd,
/// CRC32C; FORMAT.md in the repository) to `<directory>/<traces|logs>/`, and replayed,
/// oldest first, when the collector answers again. Delivery is at-least-once: a frame is deleted
/// only after the collector acknowledged it, so a crash during replay may send it twice, never
/// zero times once it was durable.
public struct SpillConfiguration: Sendable, Hashable {
    /// When written frames are made durable.
    public enum Durability: Sendable, Hashable {
        /// The operating system decides (fastest; a power loss may lose the last seconds).
        case none
        /// `fdatasync` at most every interval (a crash loses at most that much).
        case interval(Duration)
        /// `fdatasync` before a spilled batch counts as safe.
        case always
    }

    /// How the segment writer writes.
    public enum IO: Sendable, Hashable {
        /// io_uring when the kernel allows it, pwrite otherwise (said once in the log, shown in stats).
        case automatic
        /// pwrite. - Environment variable: `SPILLWAY_SPILL_IO=pwrite`.
        case pwrite
    }

    /// The spill directory (created 0700). - Environment variable: `SPILLWAY_SPILL_DIR`. Needs a restart.
    public var directory: String
    /// - Default value: `.interval(1 s)`.
    public var durability: Durability
    /// A segment is closed (and can be replayed and deleted) at this size. - Default value: 64 MiB.
    public var maxSegmentBytes: Int
    /// A segment is closed when it is this old. - Default value: 60 s.
    public var maxSegmentAge: Duration
    /// Per signal: past this many bytes on disk, whole oldest segments are deleted and their
    /// records counted as dropped (`retention`). - Default value: 1 GiB.
    public var maxBytes: Int
    /// Per signal: segments older than this are deleted (`retention`). - Default value: 24 h.
    public var maxAge: Duration
    /// - Default value: `.automatic`.
    public var io: IO
    /// Replay the newest segments first (fresh data first) instead of the oldest. - Default value: `false`.
    public var replayNewestFirst: Bool
    /// Replay requests under way at once: replay's share of export capacity, next to the live
    /// traffic's adaptive window (up to `maxConcurrentExports` per signal). A sliding window: the
    /// next frame goes out as soon as the oldest is answered, so two keep the collector busy while
    /// the replayer reads, decompresses and checks the next frames. 2 M spans replayed to a
    /// loopback receiver (pipeline start included, 2 vCPU): 1.2–1.25 M spans/s with 2, 1.65–1.8 M
    /// with 4, 0.83 M with 1. Metrics are replayed one at a time whatever this says.
    /// - Default value: 2.
    /// - Environment variable: `SPILLWAY_SPILL_REPLAY_CONCURRENCY`.
    public var replayConcurrency: Int

    /// A spill store in `directory`; every other parameter defaults to the value documented on its property.
    public init(
        directory: String, durability: Durability = .interval(.seconds(1)), maxSegmentBytes: Int = 64 << 20,
        maxSegmentAge: Duration = .seconds(60), maxBytes: Int = 1 << 30, maxAge: Duration = .seconds(86_400), io: IO = .automatic,
        replayNewestFirst: Bool = false, replayConcurrency: Int = 2
    ) {
        self.directory = directory
        self.durability = durability
        self.maxSegmentBytes = maxSegmentBytes
        self.maxSegmentAge = maxSegmentAge
        self.maxBytes = maxBytes
        self.maxAge = maxAge
        self.io = io
        self.replayNewestFirst = replayNewestFirst
        self.replayConcurrency = replayConcurrency
    }

    func validate() throws(ConfigurationError) {
        if directory.isEmpty {
            throw ConfigurationError(key: "spill.directory", value: "\"\"", allowed: "a directory path")
        }
        if maxSegmentBytes < 4096 {
            throw ConfigurationError(key: "spill.maxSegmentBytes", value: "\(maxSegmentBytes)", allowed: "an integer >= 4096")
        }
        if maxBytes < maxSegmentBytes {
            throw ConfigurationError(
                key: "spill.maxBytes", value: "\(maxBytes)", allowed: "an integer >= maxSegmentBytes (\(maxSegmentBytes))")
        }
        if maxSegmentAge <= .zero || maxAge <= .zero {
            throw ConfigurationError(key: "spill.maxAge", value: "\(maxSegmentAge), \(maxAge)", allowed: "durations > 0")
        }
        if replayConcurrency < 1 {
            throw ConfigurationError(key: "spill.replayConcurrency", value: "\(replayConcurrency)", allowed: "an integer >= 1")
        }
        if case .interval(let t) = durability, t <= .zero {
            throw ConfigurationError(key: "spill.durability", value: "interval(\(t))", allowed: "none, always, or interval(t) with t > 0")
        }
    }
}
