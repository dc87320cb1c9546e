import Benchmark
import Foundation
@_spi(Benchmarks) import Resilience
import ResilienceTesting

/// The file-backed ring (a spill directory) beside the anonymous one, in the same run: the emit
/// path and the ring alone (goal: within 5 %), and end to end with space released on delivery
/// (goal: unchanged, ≥ 2 M spans/s).
func ringFileBenchmarks(emit: Benchmark.Configuration, e2e: Benchmark.Configuration, spans: Int) {
    func directory() -> String {
        let path = NSTemporaryDirectory() + "spillway-bench-ring-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    Benchmark("ring file: emit span, 5 attributes, 1 thread", configuration: emit) { benchmark in
        let spill = directory()
        defer { try? FileManager.default.removeItem(atPath: spill) }
        let pipeline = try emitPipeline { $0.spill = SpillConfiguration(directory: spill) }
        let tracer = pipeline.tracer(scope: "bench")
        // About one lap of the 128 MiB ring file first (see the claim row): the steady state.
        for i in 0..<500_000 { emitSpan(tracer, i) }
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations { emitSpan(tracer, i) }
        benchmark.stopMeasurement()
        _ = await pipeline.shutdown(deadline: .now + .seconds(10))
    }

    Benchmark("ring file: claim + copy + commit, 256 bytes", configuration: emit) { benchmark in
        let spill = directory()
        defer { try? FileManager.default.removeItem(atPath: spill) }
        let ring = try _SpillwayBenchmarkHooks.RingHandle(capacity: 64 << 20, directory: spill)
        let record = [UInt8](repeating: 7, count: 256)
        record.withUnsafeBytes { bytes in
            // One lap first: the first write to each page of a shared file mapping faults (2 µs a
            // page, once, and again after the kernel writes the page back); the rows are the steady state.
            for _ in 0..<(64 << 20) / 264 { _ = ring.write(bytes) }
            ring.drain()
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { blackHole(ring.write(bytes)) }
            benchmark.stopMeasurement()
        }
    }

    Benchmark("ring file: end to end, \(spans) spans to the loopback receiver", configuration: e2e) { benchmark in
        let spill = directory()
        defer { try? FileManager.default.removeItem(atPath: spill) }
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        var configuration = PipelineConfiguration(serviceName: "bench")
        configuration.exporter.endpoint = receiver.endpoint
        configuration.overflowPolicy = .block(upTo: .seconds(30))
        configuration.traces.maxConcurrentExports = 4
        configuration.spill = SpillConfiguration(directory: spill)
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let start = ContinuousClock.now
        let seconds = try await sendNumberedSpans(pipeline, spans, benchmark)
        // With a spill store the overflow valve may have sent some to disk: the run ends when every
        // span reached the receiver (replayed ones included).
        try await waitUntil("ring file end to end: \(pipeline.stats())", timeout: .seconds(600)) { receiver.spanCount >= spans }
        let all = ContinuousClock.now - start
        let allSeconds = Double(all.components.seconds) + Double(all.components.attoseconds) / 1e18
        let report = receiver.sequenceReport(expected: spans)
        let stats = pipeline.stats()
        writeReport(
            "ring file end to end: \(spans) spans emitted and flushed in \(String(format: "%.2f", seconds)) s "
                + "(\(Int(Double(spans) / seconds)) spans/s), all at the receiver after \(String(format: "%.2f", allSeconds)) s "
                + "(\(Int(Double(spans) / allSeconds)) spans/s); receiver: \(report); spilled \(stats.spans.spilled), "
                + "relocated \(stats.ringFile?.relocatedRequests ?? 0); \(stats.spans.dropped)")
        _ = await pipeline.shutdown(deadline: .now + .seconds(10))
        try await receiver.stop()
    }
}
