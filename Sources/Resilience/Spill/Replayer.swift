import Logging
import Synchronization

/// Sends what the spill store holds back to the collector once it answers again, and enforces
/// the store's retention.
///
/// At start and then every 200 ms: retention first; then, if the circuit breaker is closed (or open with its
/// cool-down over: the first replayed frame is then the probe), the segments being written are
/// sealed and the sealed ones replayed — the rejected area first (the breaker is closed, so the
/// misconfiguration that put them there is over), then the spilled area — oldest first, or
/// newest first with ``SpillConfiguration/replayNewestFirst``, at most
/// ``SpillConfiguration/replayConcurrency`` requests at a time (default 2). Each frame's request
/// bytes are re-sent unchanged through the retry and breaker stages. What each frame's answer does:
///
/// | answer | the frame |
/// |---|---|
/// | success | delivered: counted as exported and replayed (a partial success's rejected records as dropped, `partial_success`) |
/// | misconfiguration (401, 403, 404, …) | moved to the rejected area (from the spilled area), and the round stops |
/// | permanent (400, …) | dropped (`export_failed`), a copy kept in the refused area |
/// | retryable, breaker open | stays; the round stops and the next one starts there |
///
/// Over a `balance-by-trace` collector pool each frame is cut by trace as live batches are, so
/// that a trace spilled in an outage reaches its own collector: when some parts are delivered and
/// others fail, the delivered ones are booked, each failed one is written back to the store as a
/// frame of its own (or refused, or moved to the rejected area, as its answer says), and the
/// frame is done: no delivered part is sent again.
///
/// Damage is skipped and counted (`corrupt`); a segment that held damage is renamed `.damaged`
/// once its intact frames were delivered, for inspection. Progress inside a segment is kept in
/// `<seq>.progress`; a segment is deleted once every frame in it was acknowledged. Delivery is
/// at-least-once.
///
/// It is given only what it uses: the store, the chain below the error-handling stage, the
/// ledger that books every outcome, the breaker's snapshot, the executor its sends run on, and
/// how to cut a frame by trace (a `balance-by-trace` pool's splitter; `nil` sends frames whole),
/// and the stack's ``RetryCutoff``, which shutdown uses to end a send's retry back-off.
final class Replayer: Sendable {
    /// What a frame's send came to: one answer, or one per part when it was cut by trace.
    enum Outcome: Sendable {
        case whole(Result<ExportResponse, any Error>)
        case parts([(batch: ExportBatch, result: Result<ExportResponse, any Error>)])
    }

    private let store: SpillStore
    private let chain: any TelemetryExporter
    private let ledger: Ledger
    private let breaker: (@Sendable () -> CircuitBreakerSnapshot)?
    private let executor: ExportExecutor
    private let split: (@Sendable (ExportBatch) -> [ExportBatch])?
    private let cutoff: RetryCutoff?
    private let logger: Logger
    private let stopped = Atomic<Bool>(false)
    /// Set when the rounds' task has returned: no send of this replayer is under way any more.
    private let exited = Atomic<Bool>(false)
    /// Set before a round checks ``stopped`` and cleared after it: `finish` cancels a replayer
    /// that is between rounds at once (only its sleep is cut short), and waits for one in a round.
    /// Sequentially consistent with ``stopped``: either `finish` sees the round started, or the
    /// round sees the stop.
    private let inRound = Atomic<Bool>(false)
    private let rounds = Mutex<Task<Void, Never>?>(nil)

    init(
        store: SpillStore, chain: any TelemetryExporter, ledger: Ledger, breaker: (@Sendable () -> CircuitBreakerSnapshot)?,
        executor: ExportExecutor, logger: Logger, split: (@Sendable (ExportBatch) -> [ExportBatch])? = nil,
        cutoff: RetryCutoff? = nil
    ) {
        self.split = split
        self.cutoff = cutoff
        self.store = store
        self.chain = chain
        self.ledger = ledger
        self.breaker = breaker
        self.executor = executor
        self.logger = logger
    }

    /// Starts the rounds (every 200 ms) until ``stop()``.
    func start() {
        let task = Task(executorPreference: executor) { [self] in
            defer { exited.store(true, ordering: .releasing) }
            // The first round at once: a pipeline that starts with records on disk sends them now.
            while !stopped.load(ordering: .relaxed) {
                inRound.store(true, ordering: .sequentiallyConsistent)  // pairs with the load in finish(before:)
                guard !stopped.load(ordering: .sequentiallyConsistent) else { return }  // pairs with the store in stop()
                await round()
                inRound.store(false, ordering: .sequentiallyConsistent)
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        rounds.withLock { $0 = task }
    }

    /// No new frame is sent after this; the sends under way go on (see ``finish(before:)``).
    func stop() { stopped.store(true, ordering: .sequentiallyConsistent) }  // pairs with the load after the round's sleep

    /// Stops the rounds and waits until the sends under way have their answers and are booked
    /// (their frames acknowledged in the store), at most until `deadline`; then cancels them —
    /// a cancelled frame stays on disk — and waits for that up to 2 s more (an exporter that
    /// ignores cancellation is left to finish in the background). Shutdown calls it before closing
    /// the store: a send of this replayer still under way when the next pipeline or process
    /// takes the directory over would deliver a frame that one then sends again (seen in a test
    /// run: a probe's retry, answered after the restart, duplicated 512 records).
    /// - Returns: Whether the rounds ended before `deadline`.
    @discardableResult
    func finish(before deadline: ContinuousClock.Instant) async -> Bool {
        stop()
        guard let task = rounds.withLock({ $0 }) else { return true }
        // Between rounds: nothing is under way, only the sleep is cut short.
        if !inRound.load(ordering: .sequentiallyConsistent) { task.cancel() }  // pairs with the store before the round
        while !exited.load(ordering: .acquiring) && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(1)) }
        guard !exited.load(ordering: .acquiring) else { return true }
        task.cancel()
        let grace = ContinuousClock.now + .seconds(2)
        while !exited.load(ordering: .acquiring) && ContinuousClock.now < grace { try? await Task.sleep(for: .milliseconds(1)) }
        return false
    }

    /// Whether to try now. With a breaker: when it is closed, or open with its cool-down over —
    /// then the first replayed frame is the probe (without live traffic nothing else would probe).
    /// Without one: when the collector answered since the last failure, or a second has passed.
    private func collectorAnswers() -> Bool {
        if let snapshot = breaker?() {
            switch snapshot.state {
            case .closed: return true
            case .open: return snapshot.reopensIn == .zero
            case .halfOpen: return false
            }
        }
        let success = ledger.exports.lastSuccessMonotonic.load(ordering: .relaxed)
        let failure = ledger.exports.lastFailureMonotonic.load(ordering: .relaxed)
        return failure == 0 || success > failure || monotonicNanos() &- failure > 1_000_000_000
    }

    private func round() async {
        for signal in TelemetrySignal.allCases {
            for deleted in store.enforceRetention(signal) {
                if deleted.records > 0 {
                    ledger.lostOnDisk(
                        signal, .retention, records: deleted.records,
                        message: "segment \(deleted.segment) deleted by the spill retention limits")
                } else {
                    logger.notice("spill: \(deleted.segment) deleted by the retention limits")
                }
            }
        }
        guard collectorAnswers() else { return }
        for area in [SpillArea.rejected, .spilled] {
            for signal in TelemetrySignal.allCases {
                store.sealOpenSegment(signal, area)
                for segment in store.sealedSegments(signal, area) {
                    guard !stopped.load(ordering: .relaxed) else { return }
                    guard await replay(segment) else { return }
                }
            }
        }
    }

    /// Replays one segment; `false` when the round must stop (the collector failed, or refused
    /// the configuration). Frames go out in windows of ``SpillConfiguration/replayConcurrency``
    /// requests at once; progress advances over the acknowledged prefix. A frame that failed
    /// ahead of one that was delivered is written back to the store as a frame of its own, so
    /// nothing delivered is sent again; the frames after the last delivered one stay.
    private func replay(_ segment: SpillStore.Segment) async -> Bool {
        let path = store.path(segment.signal, segment.area, segment.sequence)
        let cursor: SegmentCursor
        do {
            cursor = try SegmentCursor(path: path, progress: segment.progress)
        } catch {
            // Gone, or its header destroyed: keep what is left of it for inspection, count its records.
            let lost = store.finish(segment, quarantine: SpillLayout.exists(path))
            ledger.lostOnDisk(segment.signal, .corrupt, records: lost, message: "\(error); its \(lost) unreplayed records are lost")
            return true
        }
        // Metrics one frame at a time: a back end takes a series' points in time order.
        let width = segment.signal == .metrics ? 1 : max(1, store.configuration.replayConcurrency)
        let sends = SendsUnderWay()
        // A sliding window: `width` frames under way, the next one sent as soon as the oldest is
        // answered (not when the whole window is). Reading, decompressing and checking a frame is
        // CPU work that overlaps the other sends' round trips.
        var inFlight: [(entry: SegmentCursor.Entry, send: Task<Outcome, Never>?)] = []
        var exhausted = false
        func fill() {
            while inFlight.count < width && !stopped.load(ordering: .relaxed) {
                guard let entry = cursor.next() else {
                    exhausted = true
                    return
                }
                inFlight.append((entry, start(entry, sends)))
            }
        }
        var sinceAcknowledged = 0
        // Cancelled (``finish(before:)`` past its deadline): the sends are cancelled with the
        // round, their frames fail and stay on disk.
        let finished = await withTaskCancellationHandler { () async -> Bool in
            fill()
            while !inFlight.isEmpty {
                let head = inFlight.removeFirst()
                let outcome = await sends.answer(head.send)
                let (done, stop) = handle(head.entry, outcome, segment: segment, path: path)
                if done && !stop {
                    cursor.done(head.entry)
                    sinceAcknowledged += 1
                    if sinceAcknowledged >= width {
                        store.acknowledge(segment, cursor.progress)
                        sinceAcknowledged = 0
                    }
                    fill()
                    continue
                }
                // The oldest frame failed: the ones sent after it are answered first. Progress is
                // a prefix of the segment: a frame that failed ahead of one delivered would, if
                // it stayed, have the delivered one sent again with it next time (a duplicate,
                // seen under load). So such a frame is written back to the store as a frame of
                // its own and counts as done here, as a pool's undelivered parts are.
                var window = [(entry: head.entry, outcome: outcome)]
                for (entry, send) in inFlight { window.append((entry, await sends.answer(send))) }
                inFlight.removeAll()
                let lastDelivered = window.lastIndex { $0.outcome.map(Self.delivered) ?? false } ?? -1
                for (index, (entry, outcome)) in window.enumerated() {
                    var (done, stop) = index == 0 ? (done, stop) : handle(entry, outcome, segment: segment, path: path)
                    if !done, index < lastDelivered, case .frame(let batch, _) = entry, let error = outcome.flatMap(Self.failure) {
                        keepAgain(batch, in: segment.area, error: error)
                        (done, stop) = (true, false)
                    }
                    if done { cursor.done(entry) }
                    guard done && !stop else { return false }
                }
                fill()
            }
            return exhausted
        } onCancel: {
            sends.cancelAll()
        }
        store.acknowledge(segment, cursor.progress)
        guard finished else { return false }
        let lost = store.finish(segment, quarantine: cursor.progress.damaged > 0)
        if lost > 0 {
            ledger.lostOnDisk(
                segment.signal, .corrupt, records: lost,
                message: "\(lost) records of \(path) were in damage whose record count was unreadable")
        }
        return true
    }

    /// Sends one frame on the export executor (`nil` for damage: nothing to send), registered with `sends`.
    private func start(_ entry: SegmentCursor.Entry, _ sends: SendsUnderWay) -> Task<Outcome, Never>? {
        guard case .frame(let batch, _) = entry else { return nil }
        // One unstructured task per frame, awaited in file order. (A task group here returned
        // its children's results under garbage indices in -O builds; the frame's outcome was
        // then missing and the acknowledged frame was sent again forever.)
        let (executor, split, cutoff, chain) = (self.executor, self.split, self.cutoff, self.chain)
        // Shutdown's cut (``RetryCutoff``) ends a send's retry back-off as it ends a live batch's:
        // the frame stays on disk, and the round ends instead of holding shutdown.
        @Sendable func send(_ batch: ExportBatch) async throws -> ExportResponse {
            let context = ExportAttemptContext(cutoff: cutoff) { _, _, _, _, _ in }
            return try await ExportAttemptContext.$current.withValue(context) { try await chain.export(batch) }
        }
        let task = Task(executorPreference: executor) { () -> Outcome in
            let parts = split?(batch) ?? [batch]
            guard parts.count > 1 else {
                do { return .whole(.success(try await send(parts[0]))) } catch { return .whole(.failure(error)) }
            }
            // One task per part, awaited in order (see above for why not a task group).
            let sends = parts.map { part in
                Task(executorPreference: executor) { () -> Result<ExportResponse, any Error> in
                    do { return .success(try await send(part)) } catch { return .failure(error) }
                }
            }
            var results: [(batch: ExportBatch, result: Result<ExportResponse, any Error>)] = []
            for (part, send) in zip(parts, sends) { results.append((part, await send.value)) }
            return .parts(results)
        }
        sends.add(task)
        return task
    }

    /// Whether a send delivered anything: a success, or a frame cut by trace with a part delivered.
    private static func delivered(_ outcome: Outcome) -> Bool {
        switch outcome {
        case .whole(let result): if case .success = result { true } else { false }
        case .parts(let parts): parts.contains { if case .success = $0.result { true } else { false } }
        }
    }

    /// The error of a send that delivered nothing (for a frame cut by trace, its first part's).
    private static func failure(_ outcome: Outcome) -> (any Error)? {
        switch outcome {
        case .whole(.failure(let error)): return error
        case .whole(.success): return nil
        case .parts(let parts):
            guard !delivered(outcome), case .failure(let error)? = parts.first?.result else { return nil }
            return error
        }
    }

    /// Books one entry's outcome: whether it is done, and whether the round stops after it.
    private func handle(
        _ entry: SegmentCursor.Entry, _ outcome: Outcome?, segment: SpillStore.Segment, path: String
    ) -> (done: Bool, stop: Bool) {
        switch outcome {
        case .parts(let parts)?:
            guard case .frame = entry else { return (false, true) }
            let failed = parts.filter { if case .failure = $0.result { true } else { false } }
            if failed.count == parts.count, case .failure(let error) = failed[0].result {
                let done = book(entry, .failure(error), segment: segment, path: path)  // nothing delivered: the frame as one
                return (done, !done)
            }
            var stop = false
            for (part, result) in parts {
                switch result {
                case .success(let response):
                    _ = book(.frame(part, offset: 0), .success(response), segment: segment, path: path)
                case .failure(let error):
                    // A part that would stay is written back as a frame of its own: the frame is done.
                    if !book(.frame(part, offset: 0), .failure(error), segment: segment, path: path) {
                        stop = true
                        keepAgain(part, in: segment.area, error: error)
                    }
                }
            }
            return (true, stop)
        case .whole(let result)?:
            let done = book(entry, result, segment: segment, path: path)
            return (done, !done)
        case nil:
            if case .damaged = entry { return (book(entry, nil, segment: segment, path: path), false) }
            return (false, true)  // no outcome (cannot happen): never count a frame as done without one
        }
    }

    /// Writes a part that was not delivered back to the store's `area`, as a frame of its own; a
    /// part the store cannot take is counted as dropped (`spill_failed`) and reported.
    private func keepAgain(_ part: ExportBatch, in area: SpillArea, error: any Error) {
        do throws(SegmentWriter.Failure) {
            _ = try store.append(part, to: area)
        } catch {
            ledger.lostOnDisk(
                part.signal, .spillFailed, records: part.recordCount,
                message: "a part of a replayed frame was not delivered and could not be written back: \(error)")
        }
    }

    /// Books one frame's (or part's) answer, or a damaged entry; `false` when it is not done.
    private func book(
        _ entry: SegmentCursor.Entry, _ outcome: Result<ExportResponse, any Error>?, segment: SpillStore.Segment, path: String
    ) -> Bool {
        switch (entry, outcome) {
        case (.damaged(let damage), _):
            ledger.lostOnDisk(
                segment.signal, .corrupt, records: damage.records,
                message:
                    "\(damage.reason) at offset \(damage.offset) of \(path) (\(damage.length) bytes) was skipped; the segment is "
                    + "kept as .damaged"
            )
            return true
        case (.frame(let batch, _), .success(let response)?):
            let store = self.store
            ledger.replayed(batch, response) { message in
                try? store.keep(batch, in: .refused, status: nil, kind: .permanent, message: message)
            }
            return true
        case (.frame(let batch, _), .failure(let error)?):
            switch ExportFailureKind.classify(error) {
            case .misconfigured where segment.area == .rejected:
                return false  // still refused: it stays; the breaker holds the next attempt
            case .misconfigured:
                do throws(SegmentWriter.Failure) {
                    let moved = try store.keep(
                        batch, in: .rejected, status: (error as? OTLPExportError)?.statusCode, kind: .misconfigured,
                        message: ExportFailureKind.describe(error))
                    ledger.movedToRejected(batch, segment: moved, error: error)
                } catch {
                    return false  // the rejected area cannot take it: it stays where it is
                }
                return true
            case .permanent:
                // The collector refuses these bytes for good: retrying the frame forever would stall replay.
                let copy = try? store.keep(
                    batch, in: .refused, status: (error as? OTLPExportError)?.statusCode, kind: .permanent, message: "\(error)")
                ledger.replayRefused(batch, error: error, copy: copy)
                return true
            default:
                return false  // the collector failed: keep the acknowledged prefix, stop the round
            }
        case (.frame, nil):
            return false  // no outcome (cannot happen): never count a frame as done without one
        }
    }
}
