import Foundation
import Resilience
import ResilienceTesting
import Synchronization
import Testing

/// Holds every export until opened; counts what it was given.
final class GatedExporter: TelemetryExporter {
    let name = "gated"
    let isOpen = Atomic<Bool>(false)
    let exportedRecords = Atomic<Int>(0)
    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        while !isOpen.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(5)) }
        exportedRecords.add(batch.recordCount, ordering: .relaxed)
        return .accepted
    }
}

func smallRingConfiguration(overflow: OverflowPolicy) -> PipelineConfiguration {
    var configuration = PipelineConfiguration(serviceName: "ring-tests")
    configuration.ringCapacity = 4096
    configuration.overflowPolicy = overflow
    configuration.traces.maxExportBatchSize = 1
    configuration.traces.maxConcurrentExports = 1
    configuration.traces.scheduleDelay = .milliseconds(10)
    return configuration
}

/// Runs blocking code off the cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in Thread { continuation.resume(returning: body()) }.start() }
}

@Suite struct PipelineTests {
    @Test func everySpanAndLogArrivesExactlyOnceCountedByID() async throws {
        let receiver = try await OTLPReceiver.start(retention: [])
        let pipeline = try makePipeline(receiver: receiver, batchSize: 100)
        let tracer = pipeline.tracer(scope: "ids")
        let logger = pipeline.logger(scope: "ids")
        let perThread = 5_000
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<2 {
                group.addTask {
                    _ = await onThread {
                        for i in 0..<perThread {
                            let span = tracer.startSpan("op")
                            span.setAttribute("spillway.load.seq", t * perThread + i)
                            span.end()
                        }
                        for i in 0..<500 { logger.emit(body: "log") { $0.set("spillway.load.seq", t * 500 + i) } }
                    }
                }
            }
        }
        await pipeline.forceFlush()
        let spans = receiver.sequenceReport(expected: 2 * perThread, signal: .traces)
        let logs = receiver.sequenceReport(expected: 1_000, signal: .logs)
        #expect(spans.missing == 0 && spans.duplicates == 0, "\(spans)")
        #expect(logs.missing == 0 && logs.duplicates == 0, "\(logs)")
        #expect(receiver.duplicateSpanIDs == 0)
        let stats = pipeline.stats()
        #expect(stats.spans.emitted == 2 * perThread && stats.spans.exported == 2 * perThread)
        #expect(stats.logs.emitted == 1_000 && stats.logs.exported == 1_000)
        #expect(stats.spans.pending == 0 && stats.exportFailures == 0)
        expectBooksBalance(pipeline)
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    /// The pipeline's release closes its intake: a span still open then ends as a counted drop,
    /// not as a write into a ring that nothing drains any more.
    @Test func aSpanThatEndsAfterItsPipelineWasReleasedIsDroppedNotQueued() async throws {
        let receiver = try await OTLPReceiver.start()
        var pipeline: TelemetryPipeline? = try makePipeline(receiver: receiver)
        let tracer = try #require(pipeline).tracer(scope: "late")
        let span = tracer.startSpan("outlives its pipeline")
        pipeline = nil
        guard case .dropped(let reason) = span.end() else {
            Issue.record("a span ended after its pipeline was released must be dropped")
            return
        }
        #expect(reason == .shutdown)
        guard case .dropped(.shutdown) = tracer.startSpan("started after the release").end() else {
            Issue.record("a span started after the release must be dropped (shutdown)")
            return
        }
        try await receiver.stop()
    }

    @Test func aRecordLargerThanTheRingMaximumIsDroppedCountedAndTheRestFlows() async throws {
        let receiver = try await OTLPReceiver.start()
        let pipeline = try makePipeline(receiver: receiver, ringCapacity: 1024)  // records up to 120 bytes
        let tracer = pipeline.tracer(scope: "big")
        let big = tracer.startSpan("big")
        big.setAttribute("payload", String(repeating: "x", count: 500))
        let result = big.end()
        guard case .dropped(let reason) = result else {
            Issue.record("expected a drop, got \(result)")
            return
        }
        #expect(reason == .recordTooLarge)
        tracer.startSpan("small").end()
        await pipeline.forceFlush()
        #expect(receiver.spans.map(\.name) == ["small"])
        let stats = pipeline.stats()
        #expect(stats.spans.dropped == [.recordTooLarge: 1])
        #expect(stats.spans.emitted == 2 && stats.spans.exported == 1)
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    @Test func aFullRingDropsTheNewestRecordsAndCountsEveryOne() async throws {
        let exporter = GatedExporter()
        let pipeline = try TelemetryPipeline(configuration: smallRingConfiguration(overflow: .dropNewest), exporter: exporter)
        let tracer = pipeline.tracer(scope: "full")
        var dropped = 0
        for i in 0..<500 {
            let span = tracer.startSpan("s")
            span.setAttribute("i", i)
            if case .dropped(.ringFull) = span.end() { dropped += 1 }
        }
        #expect(dropped > 0)
        exporter.isOpen.store(true, ordering: .releasing)
        await pipeline.forceFlush()
        let stats = pipeline.stats()
        #expect(stats.spans.dropped[.ringFull] == dropped)
        #expect(stats.spans.emitted == 500)
        #expect(stats.spans.exported == 500 - dropped)
        #expect(exporter.exportedRecords.load(ordering: .relaxed) == 500 - dropped)
        await shutDownCheckingBooks(pipeline)
    }

    @Test func theBlockingPolicyWaitsForRoomInsteadOfDropping() async throws {
        let exporter = GatedExporter()
        let pipeline = try TelemetryPipeline(
            configuration: smallRingConfiguration(overflow: .block(upTo: .seconds(120))), exporter: exporter)
        let tracer = pipeline.tracer(scope: "block")
        Task {
            try await Task.sleep(for: .milliseconds(300))
            exporter.isOpen.store(true, ordering: .releasing)
        }
        let refused = await onThread {
            var refused = 0
            for _ in 0..<500 { if !tracer.startSpan("s").end().isAccepted { refused += 1 } }
            return refused
        }
        #expect(refused == 0)
        await pipeline.forceFlush()
        #expect(pipeline.stats().spans.exported == 500)
        #expect(pipeline.stats().spans.droppedTotal == 0)
        await shutDownCheckingBooks(pipeline)
    }

    /// Emitters blocked on a full ring (`.block`) on every cooperative thread must not starve
    /// the exports that would free the ring: exports run on the pipeline's own executor thread.
    @Test(.timeLimit(.minutes(3)))
    func exportsProgressWhileEveryCooperativeThreadIsBlockedEmitting() async throws {
        let receiver = try await OTLPReceiver.start(retention: [])
        let pipeline = try makePipeline(receiver: receiver, ringCapacity: 64 << 10, batchSize: 100, overflow: .block(upTo: .seconds(30)))
        let tracer = pipeline.tracer(scope: "starve")
        let width = max(2, ProcessInfo.processInfo.activeProcessorCount)
        // While this runs, the cooperative pool is blocked for every other test of the suite:
        // keep it short (the 64 KiB ring still fills and drains dozens of times).
        let perTask = 5_000
        let refused = await withTaskGroup(of: Int.self) { group in
            for t in 0..<width {
                group.addTask {
                    var refused = 0
                    for i in 0..<perTask {
                        let span = tracer.startSpan("s")
                        span.setAttribute("spillway.load.seq", t * perTask + i)
                        if !span.end().isAccepted { refused += 1 }
                    }
                    return refused
                }
            }
            return await group.reduce(0, +)
        }
        #expect(refused == 0)
        await pipeline.forceFlush()
        let report = receiver.sequenceReport(expected: width * perTask)
        #expect(report.missing == 0 && report.duplicates == 0, "\(report)")
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    @Test(arguments: [OTLPReceiver.Behavior.garbage, .fail(status: 500), .fail(status: 400), .fail(status: 404)])
    func aPermanentFailureDropsTheBatchTellsTheHandlerAndNothingElseBreaks(_ behavior: OTLPReceiver.Behavior) async throws {
        let receiver = try await OTLPReceiver.start()
        receiver.behavior = behavior
        let events = EventLog()
        let pipeline = try makePipeline(receiver: receiver, batchSize: 10, handler: events)
        let tracer = pipeline.tracer(scope: "faults")
        for _ in 0..<10 { tracer.startSpan("lost").end() }
        await pipeline.forceFlush()
        var stats = pipeline.stats()
        #expect(stats.spans.dropped[.exportFailed] == 10, "\(behavior): \(stats)")
        #expect(stats.lastError != nil)
        // Usually one batch of 10; a loaded machine may cut it in two at the schedule delay.
        #expect(await eventually { events.droppedByReason[.exportFailed] == 10 })
        #expect(stats.exportAttempts == events.all.count, "a permanent error is not retried: \(stats)")
        let kind: ExportFailureKind = behavior == .garbage || behavior == .fail(status: 404) ? .misconfigured : .permanent
        for event in events.all {
            #expect(event.kind == kind && event.outcome == .dropped(.exportFailed) && event.attempt == 1, "without a spill store: dropped")
        }
        #expect(
            try events.all.flatMap { try $0.spans() }.map(\.name) == Array(repeating: "lost", count: 10),
            "the handler can read the failed records")

        receiver.behavior = .accept
        for _ in 0..<10 { tracer.startSpan("delivered").end() }
        await pipeline.forceFlush()
        stats = pipeline.stats()
        #expect(stats.spans.exported == 10, "\(behavior): \(stats)")
        #expect(receiver.spans.filter { $0.name == "delivered" }.count == 10)
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    @Test(arguments: [OTLPReceiver.Behavior.resetConnection, .closeMidResponse, .fail(status: 502), .fail(status: 504)])
    func aTransientFailureIsRetriedUntilTheCollectorRecoversAndNothingIsLost(_ behavior: OTLPReceiver.Behavior) async throws {
        let receiver = try await OTLPReceiver.start()
        receiver.behavior = behavior
        let events = EventLog()
        // No time budget, so the retry stage retries however slow the machine (or ThreadSanitizer) is.
        let retry = ExportRetryPolicy(
            initialDelay: .milliseconds(20), maximumDelay: .milliseconds(100), jitter: .none, maximumElapsedTime: nil)
        let pipeline = try makePipeline(receiver: receiver, batchSize: 10, retry: retry, handler: events)
        let tracer = pipeline.tracer(scope: "faults")
        for _ in 0..<10 { tracer.startSpan("kept").end() }
        #expect(await eventually { pipeline.stats().retries >= 2 })
        #expect(pipeline.health().reasons.contains(.retrying))
        receiver.behavior = .accept
        await pipeline.forceFlush()
        let stats = pipeline.stats()
        #expect(stats.spans.exported == 10 && stats.spans.droppedTotal == 0, "\(behavior): \(stats)")
        #expect(receiver.spans.filter { $0.name == "kept" }.count == 10)
        #expect(events.all.allSatisfy { $0.kind.isRetryable || $0.kind == .circuitOpen }, "\(events.all)")
        #expect(events.droppedByReason.isEmpty)
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    @Test func aCollectorThatTakesThreeSecondsPerRequestTimesOutAndIsRetried() async throws {
        let receiver = try await OTLPReceiver.start()
        receiver.behavior = .delay(.seconds(3))
        let events = EventLog()
        let pipeline = try makePipeline(receiver: receiver, timeout: .milliseconds(300), handler: events)
        pipeline.tracer(scope: "slow").startSpan("s").end()
        // (A slow machine may also fail to connect within the timeout: connectionFailed, also transport.)
        #expect(await eventually { events.all.contains { ($0.error as? OTLPExportError)?.code == .timeout } })
        #expect(events.all.allSatisfy { $0.kind == .transport || $0.kind == .circuitOpen }, "\(events.all)")
        receiver.behavior = .accept
        await pipeline.forceFlush()
        let stats = pipeline.stats()
        // The slow requests may still have been counted by the receiver after the client gave up:
        // at-least-once, so the span arrives once or more, and it is exported, not dropped.
        #expect(stats.spans.exported == 1 && stats.spans.droppedTotal == 0, "\(stats)")
        #expect(stats.exportFailures >= 1)
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    @Test func aPartialSuccessCountsTheRejectedRecordsAsDropped() async throws {
        let receiver = try await OTLPReceiver.start()
        receiver.behavior = .partialSuccess(rejected: 3, message: "3 spans had no name")
        let pipeline = try makePipeline(receiver: receiver)
        let tracer = pipeline.tracer(scope: "partial")
        for _ in 0..<10 { tracer.startSpan("s").end() }
        await pipeline.forceFlush()
        let stats = pipeline.stats()
        #expect(stats.spans.exported == 7)
        #expect(stats.spans.dropped == [.rejected: 3])
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    @Test func theSimpleProcessorReturnsTheExportOutcomeToTheCaller() async throws {
        let receiver = try await OTLPReceiver.start()
        let pipeline = try makePipeline(receiver: receiver, processor: .simple)
        let tracer = pipeline.tracer(scope: "simple")
        let logger = pipeline.logger(scope: "simple")
        let first = await onThread { tracer.startSpan("ok").end() }
        guard case .exported = first else {
            Issue.record("expected exported, got \(first)")
            return
        }
        receiver.behavior = .fail(status: 400)
        let second = await onThread { logger.emit(body: "rejected") }
        guard case .failed(let error) = second, let otlp = error as? OTLPExportError else {
            Issue.record("expected failed, got \(second)")
            return
        }
        #expect(otlp.code == .httpStatus && otlp.statusCode == 400)
        #expect(receiver.spanCount == 1)
        let stats = pipeline.stats()
        #expect(stats.spans.exported == 1 && stats.logs.dropped == [.exportFailed: 1])
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    @Test func shutdownExportsEverythingThatWasEmitted() async throws {
        let receiver = try await OTLPReceiver.start(retention: [])
        let pipeline = try makePipeline(receiver: receiver, ringCapacity: 16 << 20, batchSize: 512)
        let tracer = pipeline.tracer(scope: "shutdown")
        for i in 0..<20_000 {
            let span = tracer.startSpan("s")
            span.setAttribute("spillway.load.seq", i)
            span.end()
        }
        let summary = await pipeline.shutdown(deadline: .now + .seconds(120))
        #expect(!summary.deadlineExceeded)
        #expect(summary.stats.spans.exported == 20_000)
        #expect(receiver.sequenceReport(expected: 20_000).missing == 0)
        // After shutdown, emitting is refused and counted.
        #expect(tracer.startSpan("late").end().isAccepted == false)
        #expect(pipeline.stats().spans.dropped[.shutdown] == 1)
        // ... and counted as emitted too: the books once went one negative per refused record.
        let after = pipeline.stats().spans
        #expect(after.emitted == 20_001 && after.pending == 0, "\(after)")
        expectBooksBalance(pipeline)
        try await receiver.stop()
    }

    /// A flush that starts after the drain thread exited used to wait forever: on a loaded
    /// machine, shutdown's own flush task could start after its deadline had passed and the
    /// thread had gone, and `shutdown` then hung in `await flush.value` (a fresh-clone run with
    /// two CPU hogs stopped there for good). Both calls now return.
    @Test func aFlushAfterTheDrainThreadExitedReturnsAtOnce() async throws {
        let exporter = GatedExporter()
        var configuration = smallRingConfiguration(overflow: .dropNewest)
        configuration.ringCapacity = 1 << 20
        let pipeline = try TelemetryPipeline(configuration: configuration, exporter: exporter)
        let tracer = pipeline.tracer(scope: "late-flush")
        for _ in 0..<100 { tracer.startSpan("s").end() }
        let summary = await pipeline.shutdown(deadline: .now + .milliseconds(100))
        #expect(summary.deadlineExceeded)
        // Awaited with a deadline, so that a regression fails here instead of hanging the suite.
        let returned = FlagBox()
        Task {
            await pipeline.forceFlush()
            returned.value.store(true, ordering: .releasing)
        }
        #expect(
            await eventually(timeout: .seconds(10)) { returned.value.load(ordering: .acquiring) },
            "forceFlush after shutdown never returned")
        let again = await pipeline.shutdown(deadline: .now + .seconds(1))
        #expect(!again.deadlineExceeded)
        exporter.isOpen.store(true, ordering: .releasing)
    }

    @Test func aShutdownDeadlineThatPassesCountsWhatIsLeftAndTheBooksStillBalance() async throws {
        let exporter = GatedExporter()
        var configuration = smallRingConfiguration(overflow: .dropNewest)
        configuration.ringCapacity = 1 << 20
        configuration.traces.maxExportBatchSize = 100
        let pipeline = try TelemetryPipeline(configuration: configuration, exporter: exporter)
        let tracer = pipeline.tracer(scope: "deadline")
        for _ in 0..<1_000 { tracer.startSpan("s").end() }
        let summary = await pipeline.shutdown(deadline: .now + .milliseconds(200))
        #expect(summary.deadlineExceeded)
        #expect(summary.stats.spans.dropped[.shutdown, default: 0] > 0)
        exporter.isOpen.store(true, ordering: .releasing)  // the one export in flight completes
        try await Task.sleep(for: .milliseconds(300))
        let stats = pipeline.stats()
        #expect(stats.spans.emitted == 1_000)
        #expect(stats.spans.exported + stats.spans.droppedTotal == 1_000, "\(stats)")
    }

    @Test func endingASpanTwiceSendsItOnce() async throws {
        let receiver = try await OTLPReceiver.start()
        let pipeline = try makePipeline(receiver: receiver)
        let span = pipeline.tracer(scope: "twice").startSpan("once")
        let copy = span
        span.end()
        let again = copy.end()
        guard case .dropped(.alreadyEnded) = again else {
            Issue.record("got \(again)")
            return
        }
        copy.setAttribute("ignored", 1)
        await pipeline.forceFlush()
        #expect(receiver.spans.count == 1)
        #expect(receiver.spans.first?.attributes.isEmpty == true)
        #expect(pipeline.stats().spans.emitted == 1)
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    @Test func eventAndLinkLimitsAreCountedInTheSpan() async throws {
        let receiver = try await OTLPReceiver.start()
        let pipeline = try makePipeline(receiver: receiver, limits: AttributeLimits(countLimit: 1, eventCountLimit: 2, linkCountLimit: 1))
        let tracer = pipeline.tracer(scope: "limits")
        let other = tracer.startSpan("other")
        let span = tracer.startSpan("limited")
        for i in 0..<5 {
            span.addEvent("e\(i)") {
                $0.set("a", 1)
                $0.set("b", 2)
            }
        }
        for _ in 0..<3 { span.addLink(other.context) }
        span.end()
        await pipeline.forceFlush()
        let decoded = try #require(receiver.spans.first { $0.name == "limited" })
        #expect(decoded.events.map(\.name) == ["e0", "e1"])
        #expect(decoded.droppedEventsCount == 3)
        #expect(decoded.events.first?.droppedAttributesCount == 1)
        #expect(decoded.links.count == 1 && decoded.droppedLinksCount == 2)
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }
}

private final class FlagBox: Sendable {
    let value = Atomic<Bool>(false)
}
