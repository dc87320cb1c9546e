import Synchronization

/// The innermost stage of a pipeline's chain: counts every attempt that reached the exporter
/// for ``PipelineStats`` and for the events' attempt numbers, and tells each signal's
/// ``ExportWindow`` how the collector answered and how fast.
struct TransportRecorder: TelemetryExporter {
    let next: any TelemetryExporter
    let counters: ExportCounters
    let windows: ExportWindows

    var name: String { next.name }

    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        counters.attempts.add(1, ordering: .relaxed)
        ExportAttemptContext.current?.attempts.add(1, ordering: .relaxed)
        let window = windows[batch.signal]
        let timing = TransportTiming()
        let start = monotonicNanos()
        do {
            let response = try await TransportTiming.$current.withValue(timing) { try await next.export(batch) }
            let elapsed = Int64(clamping: monotonicNanos() &- start) - timing.setupNanoseconds.load(ordering: .relaxed)
            window.succeeded(latency: .nanoseconds(max(0, elapsed)))
            counters.successes.add(1, ordering: .relaxed)
            counters.lastSuccess.store(nowUnixNano(), ordering: .relaxed)
            counters.lastSuccessMonotonic.store(monotonicNanos(), ordering: .relaxed)
            if counters.misconfiguration.withLock({ $0 != nil }) { counters.misconfiguration.withLock { $0 = nil } }
            return response
        } catch {
            window.failed(ExportFailureKind.classify(error))
            counters.failures.add(1, ordering: .relaxed)
            counters.lastFailure.store(nowUnixNano(), ordering: .relaxed)
            counters.lastFailureMonotonic.store(monotonicNanos(), ordering: .relaxed)
            counters.lastError.withLock { $0 = "\(error)" }
            throw error
        }
    }

    func shutdown() async { await next.shutdown() }
}
