/// A snapshot of what the pipeline did with every record since it started.
///
/// Cheap to take (a few dozen atomic loads); safe from any thread. The books balance for each
/// signal: `emitted + recovered == exported + dropped.total + onDisk + pending`, where `onDisk`
/// is what the spill store keeps (spilled and rejected areas) and `pending` is what is in the
/// ring, in a batch being built, in an export under way or waiting in memory.
public struct PipelineStats: Sendable, CustomStringConvertible {
    /// Counts for one signal.
    public struct Signal: Sendable {
        /// Records handed to the pipeline (accepted into the ring or dropped on the way in).
        public var emitted: Int
        /// Records the collector acknowledged.
        public var exported: Int
        /// Records dropped, by reason.
        public var dropped: [DropReason: Int]
        /// Records written to the spill store (cumulative).
        public var spilled: Int = 0
        /// Records read back from the spill store and acknowledged (cumulative; also in `exported`).
        public var replayed: Int = 0
        /// Records found in the spill store at start-up, written by an earlier process.
        public var recovered: Int = 0
        /// Records the collector refused because of the client's configuration, kept in the spill
        /// store's rejected area (cumulative; not dropped: they are replayed after the fix).
        public var rejected: Int = 0
        /// Records in the spill store now, not yet delivered: spilled and rejected areas.
        public var onDisk: Int = 0
        /// The part of ``onDisk`` in the rejected area.
        public var rejectedOnDisk: Int = 0
        /// Export requests the batch processor lets be under way now: the adaptive window
        /// (``BatchConfiguration/adaptiveConcurrency``), or the fixed maximum.
        public var exportWindow: Int = 0
        /// The widest ``exportWindow`` so far.
        public var exportWindowPeak: Int = 0
        /// Records of routes that do not send to the pipeline's exporter, handed to their
        /// destinations (``ExportRoute/destinations``), whose books (``PipelineStats/destinations``)
        /// count them from then on as their `emitted`. 0 without destinations.
        public var forwarded: Int = 0
        /// Records emitted (or recovered) but neither exported, dropped, on disk nor forwarded
        /// yet: in the ring, in a batch, in an export under way or waiting in memory.
        public var pending: Int { emitted + recovered - exported - dropped.values.reduce(0, +) - onDisk - forwarded }
        /// All dropped records.
        public var droppedTotal: Int { dropped.values.reduce(0, +) }
    }

    /// Spans.
    public var spans: Signal
    /// Log records.
    public var logs: Signal
    /// Metric data points (`SpillwayMetricsFactory`): `emitted` counts the data points collected
    /// into requests, every export interval.
    public var metrics = Signal(emitted: 0, exported: 0, dropped: [:])
    /// The metric series in use (attribute sets of every metric, overflow series included).
    public var metricSeries = 0
    /// Attribute sets recorded into a metric's overflow series (`otel.metric.overflow=true`)
    /// because the metric had reached ``PipelineConfiguration/Metrics/cardinalityLimit``.
    public var metricAttributeSetsOverflowed = 0
    /// With a spill directory: the ring file, and what the pipeline recovered from it at start.
    public var ringFile: RingRecovery?
    /// Bytes claimed in the ring right now.
    public var ringBytesInUse: Int
    /// The ring's capacity in bytes.
    public var ringCapacity: Int
    /// Requests sent to the exporter (each attempt counts; requests the breaker refused do not).
    public var exportAttempts: Int
    /// Requests the collector answered with success (partial success included).
    public var exportSuccesses: Int
    /// Requests that failed (transport error, non-2xx, bad response).
    public var exportFailures: Int
    /// Retries the retry stage scheduled.
    public var retries: Int
    /// Batches waiting in memory for the collector (retries spent or breaker open) right now.
    public var batchesHeldInMemory: Int
    /// The circuit breaker's state; `nil` without a breaker.
    public var circuitBreakerState: CircuitBreakerState?
    /// How often the breaker opened.
    public var circuitBreakerTrips: Int
    /// `exportSuccesses / exportAttempts`, 1 when nothing was sent yet.
    public var exportSuccessRate: Double {
        exportAttempts == 0 ? 1 : Double(exportSuccesses) / Double(exportAttempts)
    }
    /// Unix nanoseconds of the last successful export, if any.
    public var lastSuccessTime: UInt64?
    /// Unix nanoseconds of the last failed export, if any.
    public var lastFailureTime: UInt64?
    /// The last export error, described.
    public var lastError: String?
    /// Set while the collector refuses the client's configuration (401, 403, 404, …): the status
    /// and the collector's message. Cleared by the next successful export.
    public var misconfiguration: String?
    /// ``ExportFailureEvent``s produced.
    public var handlerEvents: Int
    /// Events the handler queue or the event stream discarded because they were full (the newest are kept).
    public var handlerEventsLost: Int
    /// Handler calls that threw.
    public var handlerErrors: Int
    /// Events queued without their batch because the events waiting for a handler already held
    /// 8 MiB of batches (``ExportFailureEvent/isBatchOmitted``).
    public var handlerBatchesOmitted: Int = 0
    /// With a collector pool (``OTLPExporterConfiguration/pool``): each collector's breaker, in
    /// the pool's order, while ``circuitBreakerState`` is the pool's as one (closed while any
    /// collector's is). Empty without a pool.
    public var collectors: [CollectorStatus] = []
    /// The books of each ``ExportDestination``, by name, as this value's own are for the
    /// pipeline's exporter: `emitted` counts the records handed to the destination (every record
    /// of each route that names it), and `emitted + recovered == exported + dropped + onDisk +
    /// pending` holds for each. Their ring and handler counts are the pipeline's. Empty without
    /// destinations.
    public var destinations: [String: PipelineStats] = [:]

    public var description: String {
        func line(_ name: String, _ s: Signal) -> String {
            let drops = s.dropped.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            var disk = s.spilled + s.recovered + s.rejected > 0 ? " spilled=\(s.spilled) replayed=\(s.replayed) on_disk=\(s.onDisk)" : ""
            if s.rejected + s.rejectedOnDisk > 0 { disk += " rejected=\(s.rejected) rejected_on_disk=\(s.rejectedOnDisk)" }
            if s.recovered > 0 { disk += " recovered=\(s.recovered)" }
            if s.forwarded > 0 { disk += " forwarded=\(s.forwarded)" }
            disk += " window=\(s.exportWindow) (peak \(s.exportWindowPeak))"
            return
                "\(name): emitted=\(s.emitted) exported=\(s.exported) "
                + "dropped=\(s.droppedTotal)\(drops.isEmpty ? "" : " (\(drops))")\(disk) pending=\(s.pending)"
        }
        var breaker = ""
        let collectorsLine = collectors.isEmpty ? "" : "\ncollectors: " + collectors.map(\.description).joined(separator: ", ")
        if let circuitBreakerState { breaker = "; breaker \(circuitBreakerState.rawValue), \(circuitBreakerTrips) trips" }
        var destinationLines = ""
        for (name, books) in destinations.sorted(by: { $0.key < $1.key }) {
            let state = books.circuitBreakerState.map { "; breaker \($0.rawValue)" } ?? ""
            destinationLines += "\ndestination \(name): \(line("spans", books.spans)); \(line("logs", books.logs))\(state)"
        }
        var metricsLine = ""
        if metrics.emitted + metrics.recovered > 0 || metricSeries > 0 {
            metricsLine = "\n\(line("metric points", metrics)) series=\(metricSeries) overflowed=\(metricAttributeSetsOverflowed)"
        }
        return """
            \(line("spans", spans))
            \(line("logs", logs))\(metricsLine)
            ring: \(ringBytesInUse)/\(ringCapacity) bytes; exports: \(exportAttempts) attempts, \(exportSuccesses) ok, \
            \(exportFailures) failed, \(retries) retries, \(batchesHeldInMemory) held\(breaker)\(collectorsLine)\(destinationLines)
            """
    }
}

extension PipelineStats {
    /// Nothing counted: what the status endpoint answers for a pipeline already released.
    static let empty = PipelineStats(
        spans: Signal(emitted: 0, exported: 0, dropped: [:]), logs: Signal(emitted: 0, exported: 0, dropped: [:]), ringBytesInUse: 0,
        ringCapacity: 0, exportAttempts: 0, exportSuccesses: 0, exportFailures: 0, retries: 0, batchesHeldInMemory: 0,
        circuitBreakerState: nil, circuitBreakerTrips: 0, handlerEvents: 0, handlerEventsLost: 0, handlerErrors: 0)
}

/// What `shutdown(deadline:)` achieved.
public struct ShutdownSummary: Sendable {
    /// The counts when the pipeline stopped.
    public var stats: PipelineStats
    /// Whether the deadline passed before everything was exported.
    public var deadlineExceeded: Bool
}
