import Benchmark
import Logging
import Resilience
import SpillwayIntegration
import Tracing

/// swift-distributed-tracing and swift-log through Spillway's back ends, each beside the same calls into
/// a back end that does nothing (the API's own cost, which no back end can remove; issue 28 measures
/// Spillway's share as the difference).
func ecosystemBenchmarks(_ emitConfiguration: Benchmark.Configuration) {
    Benchmark("swift-distributed-tracing → Spillway: withSpan, 5 attributes, 1 thread", configuration: emitConfiguration) { benchmark in
        let pipeline = try emitPipeline()
        let tracer = SpillwayTracer(pipeline: pipeline, scope: "bench")
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations { emitWithSpan(tracer, i) }
        benchmark.stopMeasurement()
        _ = await pipeline.shutdown(deadline: .now + .seconds(10))
    }

    Benchmark("swift-distributed-tracing → NoOpTracer: withSpan, 5 attributes (the API's own cost)", configuration: emitConfiguration) {
        benchmark in
        let tracer = NoOpTracer()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations { emitWithSpan(tracer, i) }
        benchmark.stopMeasurement()
    }

    Benchmark("swift-log → a discarding handler: logger.info with 2 metadata values", configuration: emitConfiguration) { benchmark in
        let logger = Logger(label: "bench") { _ in DiscardingLogHandler() }
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations { emitInfo(logger, i) }
        benchmark.stopMeasurement()
    }

    Benchmark("swift-log → Spillway: logger.info with 2 metadata values", configuration: emitConfiguration) { benchmark in
        let pipeline = try emitPipeline()
        let logger = Logger(label: "bench") { SpillwayLogHandler(pipeline: pipeline, label: $0) }
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations { emitInfo(logger, i) }
        benchmark.stopMeasurement()
        _ = await pipeline.shutdown(deadline: .now + .seconds(10))
    }
}
