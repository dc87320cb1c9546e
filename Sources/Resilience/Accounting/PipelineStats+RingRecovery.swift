extension PipelineStats {
    /// The ring file of a pipeline with a spill directory (`<spill directory>/ring`), and what the
    /// pipeline found in it when it started (ARCHITECTURE.md "Crash safety").
    ///
    /// A process that dies leaves every record it committed to the ring and had not yet delivered
    /// or spilled in this file; the next pipeline on the directory sends them first, and counts
    /// them in each signal's ``PipelineStats/Signal/recovered`` as they are drained.
    public struct RingRecovery: Sendable, Hashable, CustomStringConvertible {
        /// The ring file.
        public var path: String
        /// Its capacity in bytes (the earlier process's, when one left records).
        public var capacity: Int
        /// 1 for a new file; one more each time a pipeline opens it again.
        public var generation: Int
        /// Spans found committed and not yet delivered (relocated requests' spans included).
        public var recoveredSpans: Int
        /// Log records found committed and not yet delivered (metrics never pass the ring).
        public var recoveredLogRecords: Int
        /// Records claimed and never committed (a producer died in the middle of an emit), skipped.
        public var skippedRecords: Int
        /// Bytes skipped after a claim whose header was never written: records in them are lost, their number unknown.
        public var skippedBytes: Int
        /// A ring file that did not check out and was renamed aside (its new path and why), or `nil`.
        public var setAside: String?
        /// The file was written before the machine restarted: only what `machineCrash` routes'
        /// group commits had synced was read (the rest counted in ``skippedBytes``).
        public var afterReboot: Bool
        /// Requests of batches in flight moved to the ring's tail so far, because the oldest of them
        /// held the ring's space while it was half full (a retry, a slow collector), or because
        /// their export had not ended when shutdown's grace did (they stay in the ring file).
        public var relocatedRequests = 0

        init(
            path: String, capacity: Int, generation: Int, recovered: SignalTable<Int>, skipped: SignalTable<Int>, skippedBytes: Int,
            setAside: String?, afterReboot: Bool = false
        ) {
            self.afterReboot = afterReboot
            self.path = path
            self.capacity = capacity
            self.generation = generation
            self.recoveredSpans = recovered.traces
            self.recoveredLogRecords = recovered.logs
            self.skippedRecords = skipped.traces + skipped.logs
            self.skippedBytes = skippedBytes
            self.setAside = setAside
        }

        public var description: String {
            var text = "ring file \(path) (generation \(generation), \(capacity) bytes)"
            if generation > 1 {
                text += afterReboot ? ", from before a reboot (what was synced)" : ""
                text += ": recovered \(recoveredSpans) spans and \(recoveredLogRecords) log records"
                if skippedRecords > 0 || skippedBytes > 0 {
                    text += ", skipped \(skippedRecords) records a producer never committed and \(skippedBytes) bytes"
                }
            }
            if let setAside { text += "; an unreadable ring file was moved to \(setAside)" }
            return text
        }
    }
}
