import Synchronization

/// Sends what the spill store holds back to the collector once it answers again, and enforces
/// the store's retention.
///
/// Every 200 ms: retention first; then, if the circuit breaker is closed (or open with its
/// cool-down over: the first replayed frame is then the probe), the segment being written
/// is sealed and the sealed segments are replayed — oldest first, or newest first with
/// ``SpillConfiguration/replayNewestFirst`` — at most ``SpillConfiguration/replayConcurrency``
/// requests at a time (default 1), so live exports keep their slots. Each frame's request bytes are re-sent unchanged through the retry and breaker stages.
/// Progress inside a segment is kept in `<seq>.progress`; a segment is deleted once every frame
/// in it was acknowledged. A failure stops the round; the next round starts where it stopped.
/// Delivery is at-least-once.
final class Replayer: Sendable {
    private let store: SpillStore
    private let chain: any TelemetryExporter
    private let stopped = Atomic<Bool>(false)

    init(store: SpillStore, chain: any TelemetryExporter) {
        self.store = store
        self.chain = chain
    }

    func start(core: PipelineCore) {
        Task(executorPreference: core.exportExecutor) { [self, weak core] in
            while !stopped.load(ordering: .relaxed) {
                try? await Task.sleep(for: .milliseconds(200))
                guard let core, !stopped.load(ordering: .relaxed) else { return }
                await round(core)
            }
        }
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    /// Whether to try now. With a breaker: when it is closed, or open with its cool-down over —
    /// then the first replayed frame is the probe (without live traffic nothing else would probe).
    /// Without one: when the collector answered since the last failure, or a second has passed.
    private func collectorAnswers(_ core: PipelineCore) -> Bool {
        if let snapshot = core.breaker?() {
            switch snapshot.state {
            case .closed: return true
            case .open: return snapshot.reopensIn == .zero
            case .halfOpen: return false
            }
        }
        let success = core.exports.lastSuccessMonotonic.load(ordering: .relaxed)
        let failure = core.exports.lastFailureMonotonic.load(ordering: .relaxed)
        return failure == 0 || success > failure || monotonicNanos() &- failure > 1_000_000_000
    }

    private func round(_ core: PipelineCore) async {
        for signal in [TelemetrySignal.traces, .logs] {
            for (segment, records) in store.enforceRetention(signal) where records > 0 {
                core.counters(for: signal).drop(.retention, records)
                core.exports.lastDropMonotonic.store(monotonicNanos(), ordering: .relaxed)
                core.dispatcher.send(ExportFailureEvent(
                    signal: signal, processor: core.processorKind, exporterName: chain.name, route: nil, attempt: 0,
                    error: ResilienceError(code: .spillFailed, message: "segment \(segment) deleted by the spill retention limits"),
                    kind: .permanent, outcome: .dropped(.retention), recordCount: records, time: nowUnixNano(), batch: nil))
            }
        }
        guard collectorAnswers(core) else { return }
        for signal in [TelemetrySignal.traces, .logs] {
            store.sealOpenSegment(signal)
            for segment in store.sealedSegments(signal) {
                guard !stopped.load(ordering: .relaxed) else { return }
                guard await replay(segment, signal: signal, core: core) else { return }
            }
        }
    }

    /// Replays one segment; `false` when the collector failed (stop the round). Frames go out in
    /// windows of ``SpillConfiguration/replayConcurrency`` requests at once; progress advances
    /// over the acknowledged prefix, so a failure in a window re-sends its later frames next time
    /// (at-least-once).
    private func replay(_ segment: SpillStore.Segment, signal: TelemetrySignal, core: PipelineCore) async -> Bool {
        let path = store.path(signal, segment: segment.sequence)
        let counters = core.counters(for: signal)
        guard let reader = SegmentReader(path: path) else {
            let lost = store.delete(signal, segment: segment.sequence)
            counters.drop(.corrupt, lost)
            report(core, signal, lost, "segment \(path) cannot be read; deleted")
            return true
        }
        let width = max(1, store.configuration.replayConcurrency)
        var index = 0
        var frames = segment.acknowledgedFrames
        var records = segment.acknowledgedRecords
        var ended = false
        while !stopped.load(ordering: .relaxed) {
            // The next window: frames to send, and damaged entries to account for, in file order.
            var window: [(batch: ExportBatch?, lost: Int, offset: UInt64)] = []
            while window.count < width && !ended {
                switch reader.next() {
                case .end:
                    ended = true
                case .damaged(let lost, let offset):
                    if index >= segment.acknowledgedFrames { window.append((nil, lost, offset)) }
                    index += 1
                case .frame(let body, let count, let sequence):
                    if index >= segment.acknowledgedFrames {
                        window.append((ExportBatch(signal: signal, body: body, recordCount: count, sequence: sequence), 0, 0))
                    }
                    index += 1
                }
            }
            if window.isEmpty {
                store.delete(signal, segment: segment.sequence)
                return true
            }
            // One unstructured task per frame, awaited in file order. (A task group here returned
            // its children's results under garbage indices in -O builds; the frame's outcome was
            // then missing and the acknowledged frame was sent again forever.)
            let chain = self.chain
            let executor = core.exportExecutor
            let sends: [Task<Result<ExportResponse, any Error>, Never>?] = window.map { entry in
                guard let batch = entry.batch else { return nil }
                return Task(executorPreference: executor) {
                    do { return .success(try await chain.export(batch)) } catch { return .failure(error) }
                }
            }
            var outcomes: [Result<ExportResponse, any Error>?] = []
            for send in sends { outcomes.append(await send?.value) }
            for (i, entry) in window.enumerated() {
                guard let batch = entry.batch else {
                    counters.drop(.corrupt, entry.lost)
                    report(core, signal, entry.lost, "a damaged frame at offset \(entry.offset) of \(path) was skipped")
                    frames += 1
                    records += entry.lost
                    continue
                }
                switch outcomes[i] {
                case .success(let response)?:
                    let rejected = min(max(response.rejectedRecords, 0), batch.recordCount)
                    counters.exported.add(batch.recordCount - rejected, ordering: .relaxed)
                    if rejected > 0 { counters.drop(.rejected, rejected) }
                case .failure(let error)? where ExportFailureKind.classify(error) == .permanent:
                    // The collector refuses these bytes for good: retrying the frame forever would stall replay.
                    counters.drop(.exportFailed, batch.recordCount)
                    core.dispatcher.send(ExportFailureEvent(
                        signal: signal, processor: core.processorKind, exporterName: chain.name, route: nil, attempt: 1, error: error,
                        kind: .permanent, outcome: .dropped(.exportFailed), recordCount: batch.recordCount, time: nowUnixNano(), batch: batch))
                default:
                    // The collector failed: keep the acknowledged prefix, stop the round.
                    store.acknowledge(signal, segment: segment.sequence, frames: frames, records: records)
                    return false
                }
                counters.replayed.add(batch.recordCount, ordering: .relaxed)
                frames += 1
                records += batch.recordCount
            }
            store.acknowledge(signal, segment: segment.sequence, frames: frames, records: records)
        }
        return false
    }

    private func report(_ core: PipelineCore, _ signal: TelemetrySignal, _ records: Int, _ message: String) {
        core.exports.lastDropMonotonic.store(monotonicNanos(), ordering: .relaxed)
        core.dispatcher.send(ExportFailureEvent(
            signal: signal, processor: core.processorKind, exporterName: chain.name, route: nil, attempt: 0,
            error: ResilienceError(code: .spillFailed, message: message), kind: .permanent, outcome: .dropped(.corrupt),
            recordCount: records, time: nowUnixNano(), batch: nil))
    }
}
