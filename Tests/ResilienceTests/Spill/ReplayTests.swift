import Foundation
import Glibc
import Resilience
import ResilienceTesting
import Synchronization
import Testing

private func spillDirectory() -> String {
    TestDirectory.make("replay")
}

private func configuration(_ receiver: OTLPReceiver, directory: String, cooldown: Duration = .milliseconds(300)) -> PipelineConfiguration {
    var configuration = PipelineConfiguration(serviceName: "replay")
    configuration.exporter.endpoint = receiver.endpoint
    configuration.traces.scheduleDelay = .milliseconds(50)
    configuration.retry = ExportRetryPolicy(
        initialDelay: .milliseconds(20), maximumDelay: .milliseconds(50), jitter: .none, maximumElapsedTime: .milliseconds(200))
    configuration.circuitBreaker = CircuitBreakerPolicy(failureThreshold: 3, cooldown: cooldown)
    configuration.spill = SpillConfiguration(directory: directory, durability: .always, io: testIO)
    configuration.overflowPolicy = .block(upTo: .seconds(30))  // "nothing lost" means no drops
    return configuration
}

/// Whether every span `pipeline` holds is settled (none on disk, none pending) within `timeout`.
private func spansSettle(_ pipeline: TelemetryPipeline, timeout: Duration = .seconds(30)) async -> Bool {
    await eventually(timeout: timeout) {
        let s = pipeline.stats().spans
        return s.onDisk == 0 && s.pending == 0
    }
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
            expectBooksBalance(writer)
            // ... and the next one replays it when the collector is back.
            receiver.behavior = .accept
            let replayer = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
            let books = await spansSettle(replayer)
            let stats = replayer.stats().spans
            #expect(books, "round \(round): \(stats)")
            expectBooksBalance(replayer)
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
    @Test(.timeLimit(.minutes(2)))
    func aReplayedProbeThatSucceedsClosesTheBreakerAndLiveTrafficFlowsAgain() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        receiver.behavior = .fail(status: 503)
        let pipeline = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
        emit(pipeline, 0..<2_000)
        // The breaker opened (a count, not the state: with a 300 ms cool-down the state turns
        // half-open and back, and a poll on a loaded machine missed every open moment for 10 s).
        #expect(
            await eventually(timeout: .seconds(30)) { pipeline.stats().circuitBreakerTrips > 0 && pipeline.stats().spans.spilled > 0 },
            "\(pipeline.stats())")
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

    /// Spills `count` spans in batches of 500 through a pipeline whose collector is down; returns
    /// the sealed segment's path and the frame offsets (read with the independent Python reader).
    private func spilledSegment(_ receiver: OTLPReceiver, directory: String, count: Int) async throws -> (path: String, offsets: [Int]) {
        receiver.behavior = .resetConnection
        var writerConfiguration = configuration(receiver, directory: directory)
        writerConfiguration.traces.maxExportBatchSize = 500
        // Batches close by size only: a loaded machine once let the schedule delay cut one short (11 frames).
        writerConfiguration.traces.scheduleDelay = .seconds(60)
        let writer = try TelemetryPipeline(configuration: writerConfiguration)
        emit(writer, 0..<count)
        // A long deadline: a loaded machine once reached a 5 s one with 3,500 records in retries,
        // which shutdown spilled as one frame (4 frames instead of 10).
        let written = await writer.shutdown(deadline: .now + .seconds(60)).stats.spans
        #expect(written.onDisk == count, "\(written)")
        // Usually one segment. On a loaded machine the writer's replayer once sealed the open segment
        // after its first frame (the breaker not yet open: a round tried the collector), and the other
        // nine went to a second one: the caller gets the segment with the most frames.
        let segments = try FileManager.default.contentsOfDirectory(atPath: directory + "/traces").filter { $0.hasSuffix(".spill") }.sorted()
        var largest: (path: String, offsets: [Int]) = ("", [])
        var frames = 0
        for segment in segments {
            let path = directory + "/traces/" + segment
            let (_, output) = try await runPython([repositoryRoot.path + "/Tests/conformance/check_spill.py", path])
            let json = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
            let offsets = (json?["frames"] as? [[String: Any]] ?? []).compactMap { $0["offset"] as? Int }
            frames += offsets.count
            if offsets.count > largest.offsets.count { largest = (path, offsets) }
        }
        #expect(frames == count / 500, "\(segments)")
        return largest
    }

    private func patch(_ path: String, at offset: Int, _ bytes: [UInt8]) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: Data(bytes))
        try handle.close()
    }

    /// A frame header with a valid CRC and a length of 0xFFFFFFF0 once hid every frame after it,
    /// and replay counted 512 `corrupt` and deleted the file: 46,928 records gone uncounted.
    @Test(.timeLimit(.minutes(3)))
    func aDamagedFrameIsCountedAndKeptWhileEveryFrameAfterItIsDelivered() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (path, offsets) = try await spilledSegment(receiver, directory: directory, count: 5_000)
        try #require(offsets.count >= 6, "frames 2 and 5 of one segment: \(offsets)")
        // Frame 2: a length beyond the file, the header CRC made valid again. Frame 5: a payload byte.
        var header = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))[offsets[2]..<offsets[2] + 32]
        header.replaceSubrange(header.startIndex + 4..<header.startIndex + 8, with: [0xF0, 0xFF, 0xFF, 0xFF])
        let crc = Array(header.prefix(28)).withUnsafeBytes { SpillChecksum.crc32c($0) }
        header.replaceSubrange(header.startIndex + 28..<header.startIndex + 32, with: withUnsafeBytes(of: crc.littleEndian, Array.init))
        try patch(path, at: offsets[2], Array(header))
        try patch(path, at: offsets[5] + 100, [0x00, 0x11, 0x22])

        receiver.behavior = .accept
        let events = EventLog()
        var replayConfiguration = configuration(receiver, directory: directory)
        replayConfiguration.exportErrorHandler = events
        let replayer = try TelemetryPipeline(configuration: replayConfiguration)
        #expect(replayer.stats().spans.recovered == 5_000, "both damaged headers check out: their counts are known")
        let books = await spansSettle(replayer)
        let stats = replayer.stats().spans
        #expect(books, "\(stats)")
        #expect(stats.exported == 4_000 && stats.dropped[.corrupt] == 1_000, "\(stats)")
        let report = receiver.sequenceReport(expected: 5_000)
        #expect(report.received == 4_000 && report.duplicates == 0, "\(report)")
        #expect(await eventually { events.droppedByReason[.corrupt] == 1_000 }, "the handlers were told")
        // The books settle at the last frame's acknowledgement; the segment is renamed just after.
        let renamed = await eventually(timeout: .seconds(10)) {
            let kept = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/traces")) ?? []
            return kept.contains { $0.hasSuffix(".damaged") } && !kept.contains { $0.hasSuffix(".spill") }
        }
        #expect(renamed, "\((try? FileManager.default.contentsOfDirectory(atPath: directory + "/traces")) ?? [])")
        _ = await replayer.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }
}

extension ReplayTests {
    /// A slow collector (2 s a request) once filled the ring while every export slot waited, and
    /// the overflow policy dropped records although a spill store had room: now the drain thread
    /// spills what it cannot hand to an export slot once the ring is half full.
    @Test(.timeLimit(.minutes(3)))
    func aRingThatFillsWhileEveryExportSlotIsBusyOverflowsToDiskNotToDrops() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        receiver.behavior = .delay(.seconds(2))
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let events = EventLog()
        var slow = configuration(receiver, directory: directory)
        // 4 MiB: the valve opens at half, which leaves a second of headroom at this rate for a
        // drain thread starved of CPU (two hogs and the whole suite: a 1 MiB ring dropped
        // 5,078 spans there). 120,000 spans are 2-3 times the ring: without the valve they drop.
        slow.ringCapacity = 4 << 20
        // The test means "no drops", so a full ring blocks the emitter rather than drop (a fresh-clone
        // run with `.dropNewest` dropped 8,888 spans once, the machine stalled 16 s by its host and a
        // build writing beside it). Without the valve it still fails: the ring would drain at 2
        // requests per 2 s, nothing would be spilled, and 120,000 spans would not arrive in time.
        slow.overflowPolicy = .block(upTo: .seconds(30))
        // Two slots, fixed: an adaptive window would open to the 2 s collector (ExportWindowTests)
        // and this test is about what happens when it cannot open further.
        slow.traces.adaptiveConcurrency = false
        slow.traces.maxConcurrentExports = 2
        slow.exportErrorHandler = events
        let pipeline = try TelemetryPipeline(configuration: slow)
        // 20 k spans a second, steadily (an unthrottled burst larger than the ring outruns any
        // disk and meets the overflow policy, as it should).
        for burst in 0..<240 {
            emit(pipeline, burst * 500..<(burst + 1) * 500)
            try await Task.sleep(for: .milliseconds(25))
        }
        #expect(await eventually(timeout: .seconds(20)) { pipeline.stats().spans.spilled > 0 }, "\(pipeline.stats())")
        #expect(events.all.contains { $0.kind == .overflow && { if case .spilled = $0.outcome { true } else { false } }($0) })
        receiver.behavior = .accept
        let books = await eventually(timeout: .seconds(90)) {
            let s = pipeline.stats().spans
            return s.onDisk == 0 && s.pending == 0 && s.emitted == 120_000
        }
        let stats = pipeline.stats().spans
        #expect(books && stats.droppedTotal == 0 && stats.exported == 120_000, "\(stats)")
        #expect(events.droppedByReason.isEmpty, "\(events.droppedByReason)")
        #expect(receiver.sequenceReport(expected: 120_000).missing == 0)
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }
}

extension ReplayTests {
    /// Frames are replayed two at a time and a segment's progress is a prefix: when the first of a
    /// window failed and the second was delivered, both stayed, and the delivered one was sent
    /// again with the other (512 duplicates in a CI run). Now the failed one is written back.
    @Test(.timeLimit(.minutes(3)))
    func aFrameThatFailsAheadOfADeliveredOneIsWrittenBackAndNothingIsSentTwice() async throws {
        for round in 0..<2 {  // twice in one process: nothing may leak from the first pipeline to the second
            let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
            let directory = spillDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let (path, offsets) = try await spilledSegment(receiver, directory: directory, count: 3_000)
            try #require(offsets.count >= 2, "\(offsets)")
            guard case .frame(let first, _)? = try SegmentCursor(path: path).next() else {
                Issue.record("the segment's first frame does not read")
                return
            }
            receiver.behavior = .accept
            let failures = CountCell()
            var replay = configuration(receiver, directory: directory)
            replay.exportStages = [.perBatch { FailOnceStage(next: $0, sequence: first.sequence, failures: failures) }]
            let replayer = try TelemetryPipeline(configuration: replay)
            let books = await spansSettle(replayer)
            let stats = replayer.stats().spans
            #expect(books, "round \(round): \(stats)")
            #expect(failures.value.load(ordering: .relaxed) == 1, "the first frame's first send failed")
            #expect(stats.exported == 3_000 && stats.replayed == 3_000 && stats.droppedTotal == 0, "round \(round): \(stats)")
            expectBooksBalance(replayer)
            let report = receiver.sequenceReport(expected: 3_000)
            #expect(report.missing == 0 && report.duplicates == 0, "round \(round): \(report)")
            #expect(receiver.uniqueSpanIDs == 3_000 && receiver.duplicateSpanIDs == 0, "by span id")
            _ = await replayer.shutdown(deadline: .now + .seconds(5))
            try await receiver.stop()
        }
    }
}

/// Fails the first send of the batch with `sequence` (a 503, after 100 ms: the frame beside it
/// in the window is answered first), then passes every send on.
private struct FailOnceStage: TelemetryExporter {
    let next: any TelemetryExporter
    let sequence: UInt64
    let failures: CountCell
    var name: String { next.name }

    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        if batch.sequence == sequence, failures.value.compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged {
            try? await Task.sleep(for: .milliseconds(100))
            throw OTLPExportError(code: .httpStatus, statusCode: 503, message: "failed once by the test")
        }
        return try await next.export(batch)
    }
}
