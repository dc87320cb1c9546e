import Logging
import Synchronization

extension TelemetryPipeline {
    /// The ring and the scope registry whose indices its records carry.
    struct RingParts {
        let ring: Ring
        let scopes: ScopeRegistry
        /// With a spill directory: the ring file and what was recovered from it.
        let file: PipelineStats.RingRecovery?
    }

    /// The ring of a batching pipeline: with a spill directory, the file `<directory>/ring`
    /// (recovering what an earlier process left in it), sized ``fileRingCapacity(_:)``; without
    /// one, or when the file cannot be made (reported), anonymous memory of `ringCapacity` bytes.
    /// Call with the spill directory's lock held (the main stack's store).
    static func makeRing(_ configuration: PipelineConfiguration, logger: Logger) throws(ConfigurationError) -> RingParts {
        guard let spill = configuration.spill else {
            return RingParts(ring: try Ring(capacity: configuration.ringCapacity), scopes: ScopeRegistry(), file: nil)
        }
        do {
            let routes = [nil] + configuration.routes.map(\.name)
            let opened = try RingFile.open(directory: spill.directory, capacity: fileRingCapacity(configuration), routes: routes)
            let scopes = ScopeRegistry(seeds: opened.scopes, journal: opened.journal)
            if opened.needsPlaceholder { _ = scopes.index(name: RingFile.placeholderScope, version: nil) }
            let recovery = opened.recovery
            if let aside = recovery.setAside { logger.error("ring file: \(aside); a new ring file was made") }
            if recovery.generation > 1 {
                logger.notice("\(recovery)")
            }
            return RingParts(ring: opened.ring, scopes: scopes, file: recovery)
        } catch {
            logger.error(
                "ring file in \(spill.directory): \(error.message); using an anonymous ring: its records do not survive a crash")
            return RingParts(ring: try Ring(capacity: configuration.ringCapacity), scopes: ScopeRegistry(), file: nil)
        }
    }

    /// A ring file keeps read records until their batches are delivered or spilled, so it is
    /// larger than `ringCapacity` by what exports may hold — both signals' `maxBytesInFlight` —
    /// rounded up to a power of two (16 MiB + 2 × 8 MiB: 32 MiB by default), and absorbs the
    /// same bursts as the anonymous ring.
    static func fileRingCapacity(_ configuration: PipelineConfiguration) -> Int {
        let wanted = configuration.ringCapacity + configuration.traces.maxBytesInFlight + configuration.logs.maxBytesInFlight
        var capacity = configuration.ringCapacity
        while capacity < wanted && capacity < 1 << 30 { capacity <<= 1 }
        return capacity
    }

    /// The group commit's syncs so far, and (with `SPILLWAY_TEST_SYNC_TRACE=1` when the pipeline
    /// started) each sync's range and each durable emit's end position: for the tests' proof that
    /// every acknowledged record was synced. `nil` without a `machineCrash` route.
    package var ringSyncTrace: (syncs: Int, ranges: [(from: UInt64, to: UInt64)], waits: [(end: UInt64, synced: Bool)])? {
        guard let syncer = batchProcessor?.syncer else { return nil }
        let traced = syncer.traced
        return (syncer.syncs.load(ordering: .relaxed), traced.ranges, traced.waits)
    }

    /// A snapshot of the counts. Cheap; safe from any thread.
    public func stats() -> PipelineStats {
        var stats = monitor.stats()
        stats.ringFile = ringFile
        if let releaser = batchProcessor?.releaser { stats.ringFile?.relocatedRequests = releaser.counts.relocated }
        stats.metricSeries = metricReader.registry.seriesCount
        stats.metricAttributeSetsOverflowed = metricReader.registry.overflowedAttributeSets
        return stats
    }
}
