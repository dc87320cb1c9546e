import Logging
import Synchronization

/// Sends what the spill store holds back to the collector once it answers again, and enforces
/// the store's retention.
///
/// Every 200 ms: retention first; then, if the circuit breaker is closed (or open with its
/// cool-down over: the first replayed frame is then the probe), the segments being written are
/// sealed and the sealed ones replayed — the rejected area first (the breaker is closed, so the
/// misconfiguration that put them there is over), then the spilled area — oldest first, or
/// newest first with ``SpillConfiguration/replayNewestFirst``, at most
/// ``SpillConfiguration/replayConcurrency`` requests at a time (default 1), so live exports keep
/// their slots. Each frame's request bytes are re-sent unchanged through the retry and breaker
/// stages. What each frame's answer does:
///
/// | answer | the frame |
/// |---|---|
/// | success | delivered: counted as exported and replayed (a partial success's rejected records as dropped, `partial_success`) |
/// | misconfiguration (401, 403, 404, …) | moved to the rejected area (from the spilled area), and the round stops |
/// | permanent (400, …) | dropped (`export_failed`), a copy kept in the refused area |
/// | retryable, breaker open | stays; the round stops and the next one starts there |
///
/// Damage is skipped and counted (`corrupt`); a segment that held damage is renamed `.damaged`
/// once its intact frames were delivered, for inspection. Progress inside a segment is kept in
/// `<seq>.progress`; a segment is deleted once every frame in it was acknowledged. Delivery is
/// at-least-once.
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
            for deleted in store.enforceRetention(signal) {
                if deleted.records > 0 {
                    core.counters(for: signal).drop(.retention, deleted.records)
                    report(core, signal, .retention, records: deleted.records, message: "segment \(deleted.segment) deleted by the spill retention limits")
                } else {
                    core.logger.notice("spill: \(deleted.segment) deleted by the retention limits")
                }
            }
        }
        guard collectorAnswers(core) else { return }
        for area in [SpillArea.rejected, .spilled] {
            for signal in [TelemetrySignal.traces, .logs] {
                store.sealOpenSegment(signal, area)
                for segment in store.sealedSegments(signal, area) {
                    guard !stopped.load(ordering: .relaxed) else { return }
                    guard await replay(segment, core: core) else { return }
                }
            }
        }
    }

    /// Replays one segment; `false` when the round must stop (the collector failed, or refused
    /// the configuration). Frames go out in windows of ``SpillConfiguration/replayConcurrency``
    /// requests at once; progress advances over the acknowledged prefix, so a failure in a
    /// window re-sends its later frames next time (at-least-once).
    private func replay(_ segment: SpillStore.Segment, core: PipelineCore) async -> Bool {
        let path = store.path(segment.signal, segment.area, segment.sequence)
        let counters = core.counters(for: segment.signal)
        let cursor: SegmentCursor
        do {
            cursor = try SegmentCursor(path: path, progress: segment.progress)
        } catch {
            // Gone, or its header destroyed: keep what is left of it for inspection, count its records.
            let lost = store.finish(segment, quarantine: SpillLayout.exists(path))
            counters.drop(.corrupt, lost)
            report(core, segment.signal, .corrupt, records: lost, message: "\(error); its \(lost) unreplayed records are lost")
            return true
        }
        let width = max(1, store.configuration.replayConcurrency)
        while !stopped.load(ordering: .relaxed) {
            var window: [SegmentCursor.Entry] = []
            while window.count < width, let entry = cursor.next() { window.append(entry) }
            if window.isEmpty {
                let lost = store.finish(segment, quarantine: cursor.progress.damaged > 0)
                if lost > 0 {
                    counters.drop(.corrupt, lost)
                    report(core, segment.signal, .corrupt, records: lost, message: "\(lost) records of \(path) were in damage whose record count was unreadable")
                }
                return true
            }
            // One unstructured task per frame, awaited in file order. (A task group here returned
            // its children's results under garbage indices in -O builds; the frame's outcome was
            // then missing and the acknowledged frame was sent again forever.)
            let chain = self.chain
            let sends: [Task<Result<ExportResponse, any Error>, Never>?] = window.map { entry in
                guard case .frame(let batch, _) = entry else { return nil }
                return Task(executorPreference: core.exportExecutor) {
                    do { return .success(try await chain.export(batch)) } catch { return .failure(error) }
                }
            }
            var outcomes: [Result<ExportResponse, any Error>?] = []
            for send in sends { outcomes.append(await send?.value) }
            for (entry, outcome) in zip(window, outcomes) {
                guard handle(entry, outcome, segment: segment, path: path, core: core) else {
                    store.acknowledge(segment, cursor.progress)
                    return false
                }
                cursor.done(entry)
            }
            store.acknowledge(segment, cursor.progress)
        }
        return false
    }

    /// Books one entry's outcome; `false` when it is not done (the round stops before it).
    private func handle(
        _ entry: SegmentCursor.Entry, _ outcome: Result<ExportResponse, any Error>?, segment: SpillStore.Segment, path: String,
        core: PipelineCore
    ) -> Bool {
        let counters = core.counters(for: segment.signal)
        switch (entry, outcome) {
        case (.damaged(let damage), _):
            counters.drop(.corrupt, damage.records ?? 0)
            report(core, segment.signal, .corrupt, records: damage.records,
                   message: "\(damage.reason) at offset \(damage.offset) of \(path) (\(damage.length) bytes) was skipped; the segment is kept as .damaged")
            return true
        case (.frame(let batch, _), .success(let response)?):
            let rejected = response.rejectedCount(of: batch.recordCount)
            counters.exported.add(batch.recordCount - rejected, ordering: .relaxed)
            counters.replayed.add(batch.recordCount, ordering: .relaxed)
            if rejected > 0 {
                counters.drop(.rejected, rejected)
                let copy = try? store.keep(
                    batch, in: .refused, status: nil, kind: .permanent, message: "partial success: \(rejected) of \(batch.recordCount) rejected: \(response.errorMessage)")
                report(core, batch, ResilienceError(code: .partiallyRejected, message: response.errorMessage), .permanent, .dropped(.rejected), rejected, copy: copy)
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
                        message: CircuitBreakingExporter<ContinuousClock>.describe(error))
                    counters.rejectedKept.add(batch.recordCount, ordering: .relaxed)
                    report(core, batch, error, .misconfigured, .rejected(segment: moved), batch.recordCount)
                    core.exports.misconfiguration.withLock { $0 = CircuitBreakingExporter<ContinuousClock>.describe(error) }
                } catch {
                    return false  // the rejected area cannot take it: it stays where it is
                }
                return true
            case .permanent:
                // The collector refuses these bytes for good: retrying the frame forever would stall replay.
                counters.drop(.exportFailed, batch.recordCount)
                let copy = try? store.keep(batch, in: .refused, status: (error as? OTLPExportError)?.statusCode, kind: .permanent, message: "\(error)")
                report(core, batch, error, .permanent, .dropped(.exportFailed), batch.recordCount, copy: copy)
                return true
            default:
                return false  // the collector failed: keep the acknowledged prefix, stop the round
            }
        case (.frame, nil):
            return false  // no outcome (cannot happen): never count a frame as done without one
        }
    }

    /// Reports records lost on disk (`records` `nil`: an unknown number).
    private func report(_ core: PipelineCore, _ signal: TelemetrySignal, _ reason: DropReason, records: Int?, message: String) {
        core.exports.lastDropMonotonic.store(monotonicNanos(), ordering: .relaxed)
        core.reporter.report(
            signal: signal, route: nil, error: ResilienceError(code: .spillFailed, message: message), kind: .permanent,
            outcome: .dropped(reason), records: records)
    }

    /// Reports what happened to a replayed frame's records (a frame read from disk has no route).
    private func report(
        _ core: PipelineCore, _ batch: ExportBatch, _ error: any Error, _ kind: ExportFailureKind, _ outcome: ExportFailureEvent.Outcome,
        _ count: Int, copy: String? = nil
    ) {
        core.reporter.report(signal: batch.signal, route: nil, attempt: 1, error: error, kind: kind, outcome: outcome, records: count, batch: batch, copy: copy)
    }
}
