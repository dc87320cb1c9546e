import Synchronization

/// Sends what the spill store holds back to the collector once it answers again, and enforces
/// the store's retention.
///
/// Every 200 ms: retention first; then, if the circuit breaker is closed (or open with its
/// cool-down over: the first replayed frame is then the probe), the segment being written
/// is sealed and the sealed segments are replayed — oldest first, or newest first with
/// ``SpillConfiguration/replayNewestFirst`` — one request at a time, so live exports keep their
/// slots. Each frame's request bytes are re-sent unchanged through the retry and breaker stages.
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

    /// Replays one segment; `false` when the collector failed (stop the round).
    private func replay(_ segment: SpillStore.Segment, signal: TelemetrySignal, core: PipelineCore) async -> Bool {
        let path = store.path(signal, segment: segment.sequence)
        let counters = core.counters(for: signal)
        guard let reader = SegmentReader(path: path) else {
            let lost = store.delete(signal, segment: segment.sequence)
            counters.drop(.corrupt, lost)
            report(core, signal, lost, "segment \(path) cannot be read; deleted")
            return true
        }
        var index = 0
        var frames = segment.acknowledgedFrames
        var records = segment.acknowledgedRecords
        while !stopped.load(ordering: .relaxed) {
            switch reader.next() {
            case .end:
                store.delete(signal, segment: segment.sequence)
                return true
            case .damaged(let lost, let offset):
                defer { index += 1 }
                guard index >= segment.acknowledgedFrames else { continue }
                counters.drop(.corrupt, lost)
                frames += 1
                records += lost
                store.acknowledge(signal, segment: segment.sequence, frames: frames, records: records)
                report(core, signal, lost, "a damaged frame at offset \(offset) of \(path) was skipped")
            case .frame(let body, let count, let sequence):
                defer { index += 1 }
                guard index >= segment.acknowledgedFrames else { continue }
                let batch = ExportBatch(signal: signal, body: body, recordCount: count, sequence: sequence)
                do {
                    let response = try await chain.export(batch)
                    let rejected = min(max(response.rejectedRecords, 0), count)
                    counters.exported.add(count - rejected, ordering: .relaxed)
                    if rejected > 0 { counters.drop(.rejected, rejected) }
                    counters.replayed.add(count, ordering: .relaxed)
                    frames += 1
                    records += count
                    store.acknowledge(signal, segment: segment.sequence, frames: frames, records: records)
                } catch {
                    if ExportFailureKind.classify(error) == .permanent {
                        // The collector refuses these bytes for good: retrying the frame forever would stall replay.
                        counters.drop(.exportFailed, count)
                        counters.replayed.add(count, ordering: .relaxed)
                        frames += 1
                        records += count
                        store.acknowledge(signal, segment: segment.sequence, frames: frames, records: records)
                        core.dispatcher.send(ExportFailureEvent(
                            signal: signal, processor: core.processorKind, exporterName: chain.name, route: nil, attempt: 1, error: error,
                            kind: .permanent, outcome: .dropped(.exportFailed), recordCount: count, time: nowUnixNano(), batch: batch))
                        continue
                    }
                    return false
                }
            }
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
