import Benchmark
import CoreMetrics
import Foundation
import OTel
import Prometheus
@_spi(Benchmarks) import Resilience
import SpillwayIntegration

/// swift-metrics back ends side by side: `counter.increment()` and `timer.recordNanoseconds` on a
/// handler made once (as a service keeps its `Counter`), 2 dimensions, 1 and 2 threads — Spillway,
/// swift-otel 1.6.0's metrics back end and swift-prometheus 2.4.1 — and Spillway's collection of
/// 10,000 series into OTLP requests.
func metricsBenchmarks(_ configuration: Benchmark.Configuration) {
    // Two threads: a million calls a sample, so that waking the two threads (tens of
    // microseconds) is not what is measured, as it was with a thousand.
    let parallel = Benchmark.Configuration(
        metrics: configuration.metrics, scalingFactor: .mega, maxDuration: .seconds(3), maxIterations: 100)
    let backends: [(String, () throws -> (any MetricsFactory, TelemetryPipeline?))] = [
        (
            "spillway",
            {
                let pipeline = try emitPipeline()
                return (SpillwayMetricsFactory(pipeline: pipeline), pipeline)
            }
        ),
        (
            "swift-otel 1.6.0",
            {
                var config = OTel.Configuration.default
                config.traces.enabled = false
                config.logs.enabled = false
                config.metrics.exporter = .none
                return (try OTel.makeMetricsBackend(configuration: config).factory, nil)
            }
        ),
        ("swift-prometheus 2.4.1", { (PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()), nil) })
    ]
    for (name, make) in backends {
        Benchmark("\(name): counter.increment(), 2 dimensions, 1 thread", configuration: configuration) { benchmark in
            let (factory, pipeline) = try make()
            let counter = Counter(label: "http.requests", dimensions: httpDimensions, factory: factory)
            for _ in 0..<10_000 { counter.increment() }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { counter.increment() }
            benchmark.stopMeasurement()
            _ = await pipeline?.shutdown(deadline: .now + .seconds(10))
        }
        Benchmark("\(name): counter.increment(), 2 dimensions, 2 threads", configuration: parallel) { benchmark in
            let (factory, pipeline) = try make()
            let counter = Counter(label: "http.requests", dimensions: httpDimensions, factory: factory)
            twoThreads(benchmark) { counter.increment() }
            _ = await pipeline?.shutdown(deadline: .now + .seconds(10))
        }
        timerBenchmarks("\(name): timer.recordNanoseconds, 2 dimensions", configuration, parallel, make)
    }

    // Exponential histograms (no peer here has them): the same timer, 1 and 2 threads.
    timerBenchmarks("spillway: timer.recordNanoseconds, exponential histogram", configuration, parallel) {
        let pipeline = try emitPipeline { $0.metrics.histogramAggregation = .base2ExponentialBucketHistogram }
        return (SpillwayMetricsFactory(pipeline: pipeline), pipeline)
    }

    Benchmark(
        "spillway: collect 10,000 series into OTLP requests",
        configuration: .init(metrics: [.wallClock, .mallocCountTotal], scalingFactor: .one, maxDuration: .seconds(5), maxIterations: 50)
    ) { benchmark in
        let pipeline = try emitPipeline()
        let factory = SpillwayMetricsFactory(pipeline: pipeline)
        for i in 0..<10_000 {
            Counter(label: "requests.\(i % 10)", dimensions: [("user", "u\(i)")], factory: factory).increment()
        }
        for _ in benchmark.scaledIterations {
            benchmark.startMeasurement()
            blackHole(_SpillwayBenchmarkHooks.collectMetrics(of: pipeline))
            benchmark.stopMeasurement()
        }
        _ = await pipeline.shutdown(deadline: .now + .seconds(10))
    }
}

/// The 2 dimensions of every instrument here, as an HTTP server's would have.
let httpDimensions = [("http.route", "/api/cart"), ("http.request.method", "GET")]

/// `timer.recordNanoseconds` with 2 dimensions on a back end from `make`: on 1 thread its values
/// spread over a range, on 2 threads one value (the worst case for a histogram's shared buckets).
func timerBenchmarks(
    _ label: String, _ configuration: Benchmark.Configuration, _ parallel: Benchmark.Configuration,
    _ make: @escaping () throws -> (any MetricsFactory, TelemetryPipeline?)
) {
    Benchmark("\(label), 1 thread", configuration: configuration) { benchmark in
        let (factory, pipeline) = try make()
        let timer = Timer(label: "http.duration", dimensions: httpDimensions, factory: factory)
        for i in 0..<10_000 { timer.recordNanoseconds(Int64(i & 1023) * 100_000) }
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations { timer.recordNanoseconds(Int64(i & 1023) * 100_000) }
        benchmark.stopMeasurement()
        _ = await pipeline?.shutdown(deadline: .now + .seconds(10))
    }
    Benchmark("\(label), 2 threads", configuration: parallel) { benchmark in
        let (factory, pipeline) = try make()
        let timer = Timer(label: "http.duration", dimensions: httpDimensions, factory: factory)
        twoThreads(benchmark) { timer.recordNanoseconds(1_500_000) }
        _ = await pipeline?.shutdown(deadline: .now + .seconds(10))
    }
}

/// The scaled iterations split over two threads that start together (each warmed with 1,000
/// calls first); the wall time is the measurement.
func twoThreads(_ benchmark: Benchmark, _ body: @escaping @Sendable () -> Void) {
    let iterations = benchmark.scaledIterations.count
    let done = DispatchGroup()
    let ready = DispatchSemaphore(value: 0)
    let start = DispatchSemaphore(value: 0)
    for _ in 0..<2 {
        done.enter()
        Thread {
            for _ in 0..<1_000 { body() }
            ready.signal()
            start.wait()
            for _ in 0..<iterations / 2 { body() }
            done.leave()
        }.start()
    }
    // Both threads started, warmed (their per-thread pools filled) and parked before the clock
    // starts: once, the measurement began while they were still warming up, and counted 3,000
    // emits and two thread starts as 1,000 emits.
    ready.wait()
    ready.wait()
    benchmark.startMeasurement()
    start.signal()
    start.signal()
    done.wait()
    benchmark.stopMeasurement()
}
