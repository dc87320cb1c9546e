import Foundation
import Resilience
import ResilienceTesting
import Testing

/// The emit path finds its thread's state (buffer pool, id generator) through a thread-local slot;
/// a pthread key frees it when the thread exits. Many short-lived threads and spans that outlive
/// the thread that started them are where a slot shared by mistake, or one left pointing at a freed
/// state, would show: as duplicate ids, lost spans or a crash.
@Suite struct EmitThreadTests {
    @Test func spansFromManyShortLivedThreadsArriveOnceWithUniqueIDs() async throws {
        let receiver = try await OTLPReceiver.start(retention: [])
        let pipeline = try makePipeline(receiver: receiver, batchSize: 100)
        let tracer = pipeline.tracer(scope: "threads")
        let threads = 64, perThread = 100
        for round in 0..<2 {
            await withTaskGroup(of: Void.self) { group in
                for t in 0..<threads {
                    group.addTask {
                        await onThread {
                            for i in 0..<perThread {
                                let span = tracer.startSpan("op")
                                span.setAttribute("spillway.load.seq", (round * threads + t) * perThread + i)
                                span.end()
                            }
                        }
                    }
                }
            }
        }
        await pipeline.forceFlush()
        let report = receiver.sequenceReport(expected: 2 * threads * perThread, signal: .traces)
        #expect(report.missing == 0 && report.duplicates == 0, "\(report)")
        #expect(receiver.duplicateSpanIDs == 0)
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    @Test func aSpanStartedOnAThreadThatExitedEndsOnAnother() async throws {
        let receiver = try await OTLPReceiver.start(retention: [])
        let pipeline = try makePipeline(receiver: receiver)
        let tracer = pipeline.tracer(scope: "threads")
        // Started on threads that exit before the spans end: their buffers left with the spans.
        let spans = await withTaskGroup(of: Span.self, returning: [Span].self) { group in
            for t in 0..<8 {
                group.addTask {
                    await onThread {
                        let span = tracer.startSpan("handed over")
                        span.setAttribute("spillway.load.seq", t)
                        return span
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let results = await onThread { spans.map { $0.end() } }
        #expect(results.allSatisfy { if case .queued = $0 { true } else { false } })
        // The ending thread's pool took the buffers; its next spans reuse them.
        let more = await onThread {
            (8..<40).map { i in
                let span = tracer.startSpan("after")
                span.setAttribute("spillway.load.seq", i)
                return span.end()
            }
        }
        #expect(more.allSatisfy { if case .queued = $0 { true } else { false } })
        await pipeline.forceFlush()
        let report = receiver.sequenceReport(expected: 40, signal: .traces)
        #expect(report.missing == 0 && report.duplicates == 0, "\(report)")
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    /// A thread's pooled buffer keeps the pipeline of its last span (so that a span costs no retain
    /// of the pipeline every thread shares): spans of two pipelines taking turns in one buffer
    /// each reach their own, and a span whose pipeline was shut down and released still ends safely.
    @Test func spansOfTwoPipelinesTakingTurnsInOneBufferEachReachTheirOwn() async throws {
        let receivers = (try await OTLPReceiver.start(retention: []), try await OTLPReceiver.start(retention: []))
        let pipelines = (try makePipeline(receiver: receivers.0), try makePipeline(receiver: receivers.1))
        let tracers = (pipelines.0.tracer(scope: "first"), pipelines.1.tracer(scope: "second"))
        let results = await onThread {
            (0..<400).map { i in
                let span = (i % 2 == 0 ? tracers.0 : tracers.1).startSpan("turn")
                span.setAttribute("spillway.load.seq", i / 2)
                return span.end()
            }
        }
        #expect(results.allSatisfy { $0.isAccepted })
        await pipelines.0.forceFlush()
        await pipelines.1.forceFlush()
        for receiver in [receivers.0, receivers.1] {
            let report = receiver.sequenceReport(expected: 200, signal: .traces)
            #expect(report.missing == 0 && report.duplicates == 0 && receiver.spanCount == 200, "\(report)")
        }

        // A span open while its pipeline is shut down and released (nothing else names it): it ends
        // refused, counted by nobody's books but without a crash, and its buffer then serves another pipeline.
        var open: Span?
        do {
            let released = try makePipeline(receiver: receivers.0)
            let tracer = released.tracer(scope: "released")
            open = await onThread { tracer.startSpan("outlives its pipeline") }
            _ = await released.shutdown(deadline: .now + .seconds(10))
        }
        let late = await onThread { [open] in
            let result = open!.end()
            let span = tracers.1.startSpan("after")
            span.setAttribute("spillway.load.seq", 200)
            return (result, span.end())
        }
        guard case .dropped(let reason) = late.0 else {
            Issue.record("a span of a shut-down pipeline is refused, not \(late.0)")
            return
        }
        #expect(reason == .shutdown)
        #expect(late.1.isAccepted)
        await pipelines.1.forceFlush()
        #expect(receivers.1.sequenceReport(expected: 201, signal: .traces).missing == 0)
        #expect(receivers.0.spanCount == 200, "nothing of the released pipeline's span arrived")
        await shutDownCheckingBooks(pipelines.0)
        await shutDownCheckingBooks(pipelines.1)
        try await receivers.0.stop()
        try await receivers.1.stop()
    }
}
