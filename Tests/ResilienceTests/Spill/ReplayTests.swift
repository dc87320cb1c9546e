import Foundation
import Glibc
import Resilience
import ResilienceTesting
import Testing

private func spillDirectory() -> String {
    var template = Array("/tmp/spillway-replay-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
}

private func configuration(_ receiver: OTLPReceiver, directory: String, cooldown: Duration = .milliseconds(300)) -> PipelineConfiguration {
    var configuration = PipelineConfiguration(serviceName: "replay")
    configuration.exporter.endpoint = receiver.endpoint
    configuration.traces.scheduleDelay = .milliseconds(50)
    configuration.retry = ExportRetryPolicy(
        initialDelay: .milliseconds(20), maximumDelay: .milliseconds(50), jitter: .none, maximumElapsedTime: .milliseconds(200))
    configuration.circuitBreaker = CircuitBreakerPolicy(failureThreshold: 3, cooldown: cooldown)
    configuration.spill = SpillConfiguration(directory: directory, durability: .always)
    return configuration
}

private func emit(_ pipeline: TelemetryPipeline, _ range: Range<Int>) {
    let tracer = pipeline.tracer(scope: "replay")
    for i in range {
        let span = tracer.startSpan("s")
        span.setAttribute("spillway.load.seq", i)
        span.end()
    }
}

@Suite struct ReplayTests {
    /// `make bench` once hung here: a second pipeline in the same process replayed the first frame
    /// of a fresh directory forever, each send acknowledged and each acknowledgement lost.
    @Test(.timeLimit(.minutes(2)))
    func twoPipelinesOneAfterTheOtherReplayEverySpanExactlyOnce() async throws {
        for round in 0..<2 {
            let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
            let directory = spillDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            // A pipeline whose collector is down spills everything and seals it at shutdown ...
            receiver.behavior = .resetConnection
            let writer = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
            emit(writer, 0..<6_000)
            let written = await writer.shutdown(deadline: .now + .seconds(5)).stats.spans
            #expect(written.onDisk == 6_000 && written.droppedTotal == 0, "round \(round): \(written)")
            // ... and the next one replays it when the collector is back.
            receiver.behavior = .accept
            let replayer = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
            let books = await eventually(timeout: .seconds(30)) {
                let s = replayer.stats().spans
                return s.onDisk == 0 && s.pending == 0
            }
            let stats = replayer.stats().spans
            #expect(books, "round \(round): \(stats)")
            #expect(stats.recovered == 6_000 && stats.replayed == 6_000 && stats.droppedTotal == 0, "round \(round): \(stats)")
            let report = receiver.sequenceReport(expected: 6_000)
            #expect(report.missing == 0 && report.duplicates == 0, "round \(round): \(report)")
            #expect(receiver.uniqueSpanIDs == 6_000 && receiver.duplicateSpanIDs == 0, "round \(round): by span id")
            _ = await replayer.shutdown(deadline: .now + .seconds(5))
            try await receiver.stop()
        }
    }

    /// After an outage the replayed probe's success must close the breaker, so live batches are
    /// exported again instead of spilled (once, a short outage left a pipeline spilling for good).
    @Test(.timeLimit(.minutes(1)))
    func aReplayedProbeThatSucceedsClosesTheBreakerAndLiveTrafficFlowsAgain() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        receiver.behavior = .fail(status: 503)
        let pipeline = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
        emit(pipeline, 0..<2_000)
        #expect(await eventually(timeout: .seconds(10)) { pipeline.stats().circuitBreakerState == .open && pipeline.stats().spans.spilled > 0 })
        receiver.behavior = .accept
        #expect(await eventually(timeout: .seconds(10)) { pipeline.stats().circuitBreakerState == .closed }, "\(pipeline.stats())")
        let spilledBefore = pipeline.stats().spans.spilled
        emit(pipeline, 2_000..<4_000)
        let books = await eventually(timeout: .seconds(20)) {
            let s = pipeline.stats().spans
            return s.onDisk == 0 && s.pending == 0 && s.exported == 4_000
        }
        let stats = pipeline.stats()
        #expect(books, "\(stats)")
        #expect(stats.spans.spilled == spilledBefore, "live batches after the recovery went to the collector, not to disk: \(stats)")
        #expect(stats.circuitBreakerState == .closed)
        let report = receiver.sequenceReport(expected: 4_000)
        #expect(report.missing == 0 && report.duplicates == 0, "\(report)")
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }
}
