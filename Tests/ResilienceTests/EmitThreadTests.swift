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
}
