import Logging
import Synchronization

/// The one place where the outcome of every record is booked: accepted, exported, retried,
/// held, spilled, kept as rejected, dropped by reason, replayed, recovered, lost on disk.
///
/// Each method updates the counters (``SignalCounters``, ``ExportCounters``) and, where the
/// application is told, builds the one ``ExportFailureEvent`` through the ``FailureReporter``.
/// Nothing else in the library writes a counter or makes an event, so the books
/// (`emitted + recovered == exported + dropped + onDisk + pending`, ARCHITECTURE.md "The books")
/// hold by construction and are checked here: every settlement of accepted records checks, in a
/// debug build, that no more records were settled than accepted (a record settled twice, or
/// before it was accepted, trips it at the batch that did it), and ``checkBooks(onDisk:)``
/// compares the ledger's own count of records in memory with the books derived from the
/// counters and the spill store's on-disk books.
///
/// Thread-safety: safe from any thread. Producers call only ``droppedAtIntake(type:_:detail:)``
/// (relaxed atomics, one lock the first time a kind of drop happens).
final class Ledger: Sendable {
    let traces = SignalCounters()
    let logs = SignalCounters()
    let metrics = SignalCounters()
    let exports = ExportCounters()
    /// Builds and sends every event (the chain's name is set once the chain is built).
    let reporter: FailureReporter
    /// Repeated warnings (failed exports, a full disk) are summarized every 5 s.
    let logThrottle: LogThrottle
    private let logger: Logger
    /// Intake drops per route and signal (by ``RouteSlot``), turned into events by ``reportIntakeDrops(describe:)``.
    private let tallies: [DropTally]
    private let routeNames: [String?]
    /// The intake drops already reported, by tally slot and reason.
    private let reportedTallies: Mutex<[Int]>
    private let warnedDrops = Mutex<Set<String>>([])

    /// - Parameters:
    ///   - routeNames: the route names by route index (index 0, the default route: `nil`).
    init(
        dispatcher: ExportEventDispatcher, processor: ProcessorKind, logger: Logger, routeNames: [String?] = [nil],
        exporterName: String = "", destination: String? = nil
    ) {
        self.reporter = FailureReporter(dispatcher: dispatcher, processor: processor, exporterName: exporterName, destination: destination)
        self.logThrottle = LogThrottle(logger: logger)
        self.logger = logger
        self.routeNames = routeNames
        let slots = RouteSlot.count(routes: routeNames.count)
        self.tallies = (0..<slots).map { _ in DropTally() }
        self.reportedTallies = Mutex(Array(repeating: 0, count: slots * DropTally.reasons.count))
    }

    @inline(__always)
    func counters(_ signal: TelemetrySignal) -> SignalCounters {
        switch signal {
        case .traces: traces
        case .logs: logs
        case .metrics: metrics
        }
    }

    // MARK: Intake

    /// `n` records of `signal` entered the pipeline's custody (drained from the ring, or handed
    /// to the simple processor). Booked before any of them can be settled.
    func accepted(_ signal: TelemetrySignal, _ n: Int) {
        guard n > 0 else { return }
        let counters = counters(signal)
        counters.accepted.add(n, ordering: .relaxed)
        counters.inMemory.add(n, ordering: .relaxed)
    }

    /// One record refused before it reached the ring. Called on the producer's thread; the
    /// handlers hear of it from the monitor's next ``reportIntakeDrops(describe:)``.
    func droppedAtIntake(type: Int32, _ reason: DropReason, detail: @autoclosure () -> String) {
        guard let slot = RouteSlot.index(of: type) else { return }
        let counters = counters(RouteSlot.signal(slot))
        counters.drop(reason, 1)
        if reason == .shutdown { counters.shutdownAtIntake.add(1, ordering: .relaxed) }
        let before = tallies[slot].add(reason, 1)
        exports.lastDropMonotonic.store(monotonicNanos(), ordering: .relaxed)
        // Only the first drop of its kind on this route builds the message and takes the lock: a
        // full ring drops many records a second, each on an application thread.
        if before == 0 { warnOnce(reason, signal: RouteSlot.signal(slot), detail: detail()) }
    }

    /// `n` accepted records dropped inside the pipeline whose batch no longer exists (the rest of
    /// the ring at shutdown); reported with the intake drops.
    func droppedInside(signal: TelemetrySignal, route: Int, _ reason: DropReason, _ n: Int) {
        guard n > 0 else { return }
        counters(signal).drop(reason, n)
        settle(signal, n)
        tallies[RouteSlot.index(route: route, signal: signal)].add(reason, n)
        exports.lastDropMonotonic.store(monotonicNanos(), ordering: .relaxed)
    }

    /// Turns the intake drops booked since the last call into events, one per route, signal and
    /// reason. Called by the monitor every 100 ms and at shutdown.
    func reportIntakeDrops(describe: (DropReason) -> (ExportFailureKind, ResilienceError)) {
        reportedTallies.withLock { reported in
            for (index, tally) in tallies.enumerated() {
                for (r, reason) in DropTally.reasons.enumerated() {
                    let total = tally.count(reason)
                    let slot = index * DropTally.reasons.count + r
                    let delta = total - reported[slot]
                    guard delta > 0 else { continue }
                    reported[slot] = total
                    let (kind, error) = describe(reason)
                    reporter.report(
                        signal: RouteSlot.signal(index), route: routeNames[RouteSlot.route(index)], error: error, kind: kind,
                        outcome: .dropped(reason), records: delta)
                }
            }
        }
    }

    /// The records of `batch`, of a route that does not send to this ledger's exporter, were
    /// handed to their destinations, whose ledgers book them from now on.
    func forwarded(_ batch: ExportBatch) {
        counters(batch.signal).forwarded.add(batch.recordCount, ordering: .relaxed)
        settle(batch.signal, batch.recordCount)
    }

    /// A destination's copy of `batch` dropped before an attempt: every export slot of the
    /// destination was busy and it has no spill store.
    func droppedBusy(_ batch: ExportBatch) {
        let error = ResilienceError(
            code: .ringFull, message: "every export slot of the destination was busy and there is no spill store to keep its copy")
        dropped(batch, .destinationBusy, attempt: 0, error: error, kind: .overflow)
    }

    // MARK: Live exports (the error-handling stage, the overflow valve, shutdown)

    /// The collector acknowledged `batch`: its records are exported, except those a partial
    /// success rejected, which are dropped (`rejected`) and reported. `copy` keeps the refused
    /// records for inspection and returns where (called only when some were rejected).
    func delivered(_ batch: ExportBatch, _ response: ExportResponse, attempt: Int, copy: (String) -> String?) {
        let counters = counters(batch.signal)
        let rejected = response.rejectedCount(of: batch.recordCount)
        counters.exported.add(batch.recordCount - rejected, ordering: .relaxed)
        if rejected > 0 {
            counters.drop(.rejected, rejected)
            exports.lastDropMonotonic.store(monotonicNanos(), ordering: .relaxed)
            let message =
                response.errorMessage.isEmpty ? "the collector rejected \(rejected) of \(batch.recordCount) records" : response.errorMessage
            warnOnce(
                .rejected, signal: batch.signal,
                detail: "the collector rejected \(rejected) of \(batch.recordCount) records: \(response.errorMessage)")
            let kept = copy("partial success: \(rejected) of \(batch.recordCount) rejected: \(response.errorMessage)")
            reporter.report(
                batch, attempt: attempt, error: ResilienceError(code: .partiallyRejected, message: message), kind: .permanent,
                outcome: .dropped(.rejected), records: rejected, copy: kept)
        }
        settle(batch.signal, batch.recordCount)
    }

    /// `batch` was kept by the failure destination (spilled, or rejected for a misconfiguration):
    /// its records stay in the pipeline's custody, on disk.
    func kept(_ batch: ExportBatch, _ custody: ExportResponse.Custody, attempt: Int, error: any Error, kind: ExportFailureKind) {
        let counters = counters(batch.signal)
        switch custody {
        case .rejected(let segment):
            counters.rejectedKept.add(batch.recordCount, ordering: .relaxed)
            reporter.report(batch, attempt: attempt, error: error, kind: kind, outcome: .rejected(segment: segment))
        case .spilled(let segment):
            counters.spilled.add(batch.recordCount, ordering: .relaxed)
            reporter.report(batch, attempt: attempt, error: error, kind: kind, outcome: .spilled(segment: segment))
        }
        settle(batch.signal, batch.recordCount)
    }

    /// `batch` is lost: dropped for `reason` and reported (with the path of a copy kept for inspection).
    func dropped(_ batch: ExportBatch, _ reason: DropReason, attempt: Int, error: any Error, kind: ExportFailureKind, copy: String? = nil) {
        counters(batch.signal).drop(reason, batch.recordCount)
        exports.lastDropMonotonic.store(monotonicNanos(), ordering: .relaxed)
        if reason == .diskFull || reason == .spillFailed {
            logThrottle.warning(
                "spill store failures (\(reason))", records: batch.recordCount,
                "spill: \((error as? ResilienceError)?.message ?? "\(error)")")
        } else {
            let target = reporter.destination.map { "destination \($0) (\(reporter.exporterName))" } ?? reporter.exporterName
            logThrottle.warning(
                "failed exports (\(batch.signal), \(reason))", records: batch.recordCount,
                "export of \(batch.recordCount) \(batch.signal) records to \(target) failed; dropped (\(reason)): \(error)")
        }
        reporter.report(batch, attempt: attempt, error: error, kind: kind, outcome: .dropped(reason), copy: copy)
        settle(batch.signal, batch.recordCount)
    }

    /// The retry stage will send `batch` again after `delay`.
    func willRetry(_ batch: ExportBatch, attempt: Int, error: any Error, kind: ExportFailureKind, after delay: Duration) {
        exports.retries.add(1, ordering: .relaxed)
        exports.lastRetryMonotonic.store(monotonicNanos(), ordering: .relaxed)
        reporter.report(batch, attempt: attempt, error: error, kind: kind, outcome: .willRetry(after: delay))
    }

    /// `batch` waits in memory for `wait` before it is sent again (no spill store). Pair with ``releasedFromMemory()``.
    func heldInMemory(_ batch: ExportBatch, attempt: Int, error: any Error, kind: ExportFailureKind, wait: Duration) {
        reporter.report(batch, attempt: attempt, error: error, kind: kind, outcome: .heldInMemory(retryAfter: wait))
        exports.held.add(1, ordering: .relaxed)
    }

    /// A batch held by ``heldInMemory(_:attempt:error:kind:wait:)`` stopped waiting.
    func releasedFromMemory() { exports.held.subtract(1, ordering: .relaxed) }

    /// The collector refused the client's configuration (status and message), or `nil`: fixed.
    func misconfigured(_ description: String?) { exports.misconfiguration.withLock { $0 = description } }

    // MARK: The spill store and replay

    /// What an earlier process left on disk, found at start-up.
    func recovered(_ signal: TelemetrySignal, _ n: Int) { counters(signal).recovered.store(n, ordering: .relaxed) }

    /// `n` records an earlier process left in the ring file were drained: recovered (not emitted
    /// by this process) and now in memory, like accepted ones.
    func recoveredFromRing(_ signal: TelemetrySignal, _ n: Int) {
        guard n > 0 else { return }
        let counters = counters(signal)
        counters.recovered.add(n, ordering: .relaxed)
        counters.inMemory.add(n, ordering: .relaxed)
    }

    /// A batch read back from disk was acknowledged: exported and replayed (a partial success's
    /// rejected records dropped and reported, with the copy `copy` makes). Records on disk are
    /// not in memory: nothing is settled.
    func replayed(_ batch: ExportBatch, _ response: ExportResponse, copy: (String) -> String?) {
        let counters = counters(batch.signal)
        let rejected = response.rejectedCount(of: batch.recordCount)
        counters.exported.add(batch.recordCount - rejected, ordering: .relaxed)
        counters.replayed.add(batch.recordCount, ordering: .relaxed)
        if rejected > 0 {
            counters.drop(.rejected, rejected)
            exports.lastDropMonotonic.store(monotonicNanos(), ordering: .relaxed)
            let kept = copy("partial success: \(rejected) of \(batch.recordCount) rejected: \(response.errorMessage)")
            reporter.report(
                signal: batch.signal, route: nil, attempt: 1,
                error: ResilienceError(code: .partiallyRejected, message: response.errorMessage),
                kind: .permanent, outcome: .dropped(.rejected), records: rejected, batch: batch, copy: kept)
        }
    }

    /// A batch read back from disk was refused for good (`export_failed`); a copy is at `copy`.
    func replayRefused(_ batch: ExportBatch, error: any Error, copy: String?) {
        counters(batch.signal).drop(.exportFailed, batch.recordCount)
        exports.lastDropMonotonic.store(monotonicNanos(), ordering: .relaxed)
        reporter.report(
            signal: batch.signal, route: nil, attempt: 1, error: error, kind: .permanent, outcome: .dropped(.exportFailed),
            records: batch.recordCount, batch: batch, copy: copy)
    }

    /// A batch read back from disk met a misconfiguration and was moved to the rejected area.
    func movedToRejected(_ batch: ExportBatch, segment: String, error: any Error) {
        counters(batch.signal).rejectedKept.add(batch.recordCount, ordering: .relaxed)
        reporter.report(
            signal: batch.signal, route: nil, attempt: 1, error: error, kind: .misconfigured, outcome: .rejected(segment: segment),
            records: batch.recordCount, batch: batch)
        misconfigured(ExportFailureKind.describe(error))
    }

    /// Records on disk are gone: deleted by retention, or in damage (`records` `nil`: a number
    /// the damage did not let anybody read).
    func lostOnDisk(_ signal: TelemetrySignal, _ reason: DropReason, records: Int?, message: String) {
        counters(signal).drop(reason, records ?? 0)
        exports.lastDropMonotonic.store(monotonicNanos(), ordering: .relaxed)
        reporter.report(
            signal: signal, route: nil, error: ResilienceError(code: .spillFailed, message: message), kind: .permanent,
            outcome: .dropped(reason),
            records: records)
    }

    /// A spilled batch's write failed after its append had returned: its records, counted as on
    /// disk in `area`, are dropped for `reason` (the segment writer cut them from the file).
    func lostAfterSpill(_ signal: TelemetrySignal, area: SpillArea, records: Int, _ reason: DropReason) {
        let counters = counters(signal)
        if area == .rejected {
            counters.rejectedKept.subtract(records, ordering: .relaxed)
        } else {
            counters.spilled.subtract(records, ordering: .relaxed)
        }
        counters.drop(reason, records)
        exports.lastDropMonotonic.store(monotonicNanos(), ordering: .relaxed)
        reporter.report(
            signal: signal, route: nil,
            error: ResilienceError(
                code: reason == .diskFull ? .diskFull : .spillFailed, message: "a spilled batch's write failed after it was accepted"),
            kind: .permanent, outcome: .dropped(reason), records: records)
    }

    // MARK: The books

    /// `n` accepted records of `signal` left memory (exported, on disk, or dropped).
    private func settle(_ signal: TelemetrySignal, _ n: Int) {
        let left = counters(signal).inMemory.subtract(n, ordering: .relaxed).newValue
        assert(
            left >= 0,
            "the books: \(signal) settled \(-left) more records than it accepted (a record settled twice, or before it was accepted)")
    }

    /// Compares the records the ledger holds in memory with the pending count derived from the
    /// books (`emitted + recovered - exported - dropped - onDisk`): they differ only while a
    /// count is being moved, so callers check at rest (after a flush, at shutdown). Returns a
    /// description of each difference, empty when the books balance.
    func checkBooks(onDisk: (TelemetrySignal) -> Int) -> [String] {
        var problems: [String] = []
        for signal in TelemetrySignal.allCases {
            let counters = counters(signal)
            let derived = counters.snapshot(onDisk: onDisk(signal)).pending
            let held = counters.inMemory.load(ordering: .relaxed)
            if derived != held { problems.append("\(signal): the books say \(derived) pending, the ledger holds \(held) in memory") }
        }
        return problems
    }

    // MARK: Logs

    /// Logs the first drop of each kind; the stats count every one.
    private func warnOnce(_ reason: DropReason, signal: TelemetrySignal, detail: @autoclosure () -> String) {
        let key = "\(signal)/\(reason)"
        guard warnedDrops.withLock({ $0.insert(key).inserted }) else { return }
        let message =
            "dropping \(signal) records (\(reason)): \(detail()); further drops of this kind are only counted in stats() and "
            + "reported to the export error handlers"
        logger.warning("\(message)")
    }
}

/// Intake drops of one route and signal, by reason.
final class DropTally: Sendable {
    static let reasons: [DropReason] = [.ringFull, .recordTooLarge, .shutdown]
    private let ringFull = Atomic<Int>(0)
    private let recordTooLarge = Atomic<Int>(0)
    private let shutdown = Atomic<Int>(0)

    /// Adds `n` drops for `reason`; returns the count before.
    @discardableResult
    func add(_ reason: DropReason, _ n: Int) -> Int {
        switch reason {
        case .ringFull: return ringFull.add(n, ordering: .relaxed).oldValue
        case .recordTooLarge: return recordTooLarge.add(n, ordering: .relaxed).oldValue
        case .shutdown: return shutdown.add(n, ordering: .relaxed).oldValue
        default: return 0
        }
    }

    func count(_ reason: DropReason) -> Int {
        switch reason {
        case .ringFull: return ringFull.load(ordering: .relaxed)
        case .recordTooLarge: return recordTooLarge.load(ordering: .relaxed)
        case .shutdown: return shutdown.load(ordering: .relaxed)
        default: return 0
        }
    }
}
