import ArgumentParser
import Foundation
import Resilience
import ResilienceTesting

/// `spillway demo --outage 20s`: the load runs for about twice the outage, paced; a quarter of
/// the way in the collector answers 503 for the outage's length; a spill store in a temporary
/// directory keeps what cannot be delivered, and replays it when the collector is back. Every
/// 100 ms the books are sampled; the run ends when they settle, and is drawn as an SVG.
struct OutageDemo {
    var load: LoadOptions
    var outage: Duration
    var svgPath: String

    func run() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        let spillDirectory = NSTemporaryDirectory() + "spillway-demo-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: spillDirectory) }
        let events = EventTally()
        var configuration = try loadConfiguration(endpoint: receiver.endpoint, spillDirectory: spillDirectory, events: events)
        configuration.retry = ExportRetryPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(200))
        configuration.circuitBreaker = CircuitBreakerPolicy(failureThreshold: 5, cooldown: .seconds(2), initialCooldown: .milliseconds(500))
        configuration.metrics.exportInterval = .seconds(1)
        let pipeline = try TelemetryPipeline(configuration: configuration)

        // Paced so that the run lasts about twice the outage (at least 4 s).
        let outageSeconds = seconds(outage)
        let runSeconds = max(4, outageSeconds * 2)
        var options = load
        if options.rate == 0 { options.rate = Double(options.spans + options.logs) / runSeconds }
        print(
            "spillway demo: receiver at \(receiver.endpoint); \(options.spans) spans and \(options.logs) logs at "
                + "\(formatRate(options.rate))/s; the collector answers 503 for \(outage) from \(String(format: "%.1f", runSeconds / 4)) s")
        fflush(nil)

        let timeline = OutageTimeline()
        let sampling = Task {
            while !Task.isCancelled {
                timeline.sample(pipeline.stats())
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let collector = Task {
            try await Task.sleep(for: .milliseconds(Int64(runSeconds / 4 * 1000)))
            receiver.behavior = .fail(status: 503)
            timeline.mark("collector down")
            try await Task.sleep(for: outage)
            receiver.behavior = .accept
            timeline.mark("collector up")
        }
        let emitting = Task.detached { options.generator.run(pipeline: pipeline) }
        _ = await emitting.value
        try? await collector.value
        // The last batches now, not after the schedule delay (5 s for spans).
        await pipeline.forceFlush()
        // Wait on the books: everything emitted exported or dropped, nothing left on disk.
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            let stats = pipeline.stats()
            let all = [stats.spans, stats.logs]
            if all.allSatisfy({ $0.onDisk == 0 && $0.pending == 0 }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let summary = await pipeline.shutdown(deadline: .now + .seconds(30))
        sampling.cancel()
        _ = try? await sampling.value
        timeline.sample(summary.stats)
        try await receiver.stop()

        let stats = summary.stats
        let title =
            "spillway demo --outage \(outage): \(grouped(stats.spans.emitted + stats.logs.emitted)) records, collector down \(outage)"
        do {
            try timeline.svg(title: title, books: stats).write(toFile: svgPath, atomically: true, encoding: .utf8)
        } catch {
            throw ValidationError("--svg: cannot write \(svgPath): \(error.localizedDescription)")
        }
        let spans = receiver.sequenceReport(expected: load.spans, signal: .traces)
        let logs = receiver.sequenceReport(expected: load.logs, signal: .logs)
        let lost = spans.missing + logs.missing
        print(
            """

            emitted:     \(stats.spans.emitted) spans, \(stats.logs.emitted) logs
            received:    \(receiver.spanCount) spans, \(receiver.logCount) logs
            lost:        \(lost)   (by spillway.load.seq: spans \(spans); logs \(logs))
            spilled:     \(stats.spans.spilled + stats.logs.spilled), replayed \(stats.spans.replayed + stats.logs.replayed)
            dropped:     \(dropped(stats.spans)) spans, \(dropped(stats.logs)) logs
            breaker:     \(stats.circuitBreakerTrips) trips; events: \(events.summary)
            timeline:    \(svgPath)
            """)
        if lost > 0 { throw ExitCode(1) }
    }
}
