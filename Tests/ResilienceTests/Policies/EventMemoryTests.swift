import Glibc
import Resilience
import ResilienceTesting
import Synchronization
import Testing

/// A handler that blocks until opened, so events pile up in the handlers' queue.
private final class GatedHandler: ExportErrorHandler, Sendable {
    private let open = Atomic<Bool>(false)
    let events = Mutex<[ExportFailureEvent]>([])
    func handleExportError(_ event: ExportFailureEvent) {
        while !open.load(ordering: .acquiring) { usleepMilliseconds(1) }
        events.withLock { $0.append(event) }
    }
    func release() { open.store(true, ordering: .releasing) }
}

private func usleepMilliseconds(_ ms: UInt32) {
    _ = ms
    var ts = timespec(tv_sec: 0, tv_nsec: Int(ms) * 1_000_000)
    nanosleep(&ts, nil)
}

@Suite struct EventMemoryTests {
    /// Spilling a dead collector's traffic once kept every spilled batch in the events queues:
    /// RSS grew one-for-one with the bytes spilled. Events now keep at most 8 MiB of batches.
    @Test(.timeLimit(.minutes(3)))
    func queuedEventsKeepAtMostEightMebibytesOfBatchesAndLoseNoEvent() async throws {
        let handler = GatedHandler()
        var configuration = PipelineConfiguration(serviceName: "memory")
        configuration.retry = nil
        configuration.circuitBreaker = nil
        configuration.exportErrorHandler = handler
        configuration.overflowPolicy = .block(upTo: .seconds(10))
        let refusing = ScriptedExporter([], afterScript: .failure(OTLPExportError(code: .httpStatus, statusCode: 400, message: "no")))
        let pipeline = try TelemetryPipeline(configuration: configuration, exporter: refusing)
        let tracer = pipeline.tracer(scope: "memory")
        let batches = 300
        for i in 0..<batches * 512 {
            let span = tracer.startSpan("GET /memory/test/route")
            span.setAttribute("spillway.load.seq", i)
            span.setAttribute("padding", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
            span.end()
        }
        await pipeline.forceFlush()
        let stats = pipeline.stats()
        #expect(stats.spans.dropped[.exportFailed] == batches * 512, "\(stats)")
        #expect(stats.handlerBatchesOmitted > 0, "300 batches of ~100 KB exceed the budget: \(stats.handlerBatchesOmitted)")
        handler.release()
        #expect(await eventually { handler.events.withLock { $0.count } == batches })
        let events = handler.events.withLock { $0 }
        let kept = events.compactMap(\.batch).reduce(0) { $0 + $1.body.count }
        #expect(kept <= 8 << 20, "batches kept by queued events: \(kept) bytes")
        #expect(events.filter(\.isBatchOmitted).count == stats.handlerBatchesOmitted)
        #expect(events.reduce(0) { $0 + $1.recordCount } == batches * 512, "every record is covered by an event")
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
    }
}
