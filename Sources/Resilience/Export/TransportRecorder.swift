import Synchronization

/// The innermost stage of a pipeline's chain: counts every attempt that reached the exporter
/// for ``PipelineStats`` and for the events' attempt numbers.
struct TransportRecorder: TelemetryExporter {
    let next: any TelemetryExporter
    let counters: ExportCounters

    var name: String { next.name }

    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        counters.attempts.add(1, ordering: .relaxed)
        ExportAttemptContext.current?.attempts.add(1, ordering: .relaxed)
        do {
            let response = try await next.export(batch)
            counters.successes.add(1, ordering: .relaxed)
            counters.lastSuccess.store(nowUnixNano(), ordering: .relaxed)
            counters.lastSuccessMonotonic.store(monotonicNanos(), ordering: .relaxed)
            if counters.misconfiguration.withLock({ $0 != nil }) { counters.misconfiguration.withLock { $0 = nil } }
            return response
        } catch {
            counters.failures.add(1, ordering: .relaxed)
            counters.lastFailure.store(nowUnixNano(), ordering: .relaxed)
            counters.lastFailureMonotonic.store(monotonicNanos(), ordering: .relaxed)
            counters.lastError.withLock { $0 = "\(error)" }
            throw error
        }
    }

    func shutdown() async { await next.shutdown() }
}
