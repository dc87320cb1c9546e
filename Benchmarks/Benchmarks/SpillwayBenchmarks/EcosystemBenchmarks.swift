import Benchmark
import Logging
import Resilience
import SpillwayIntegration
import Tracing

/// A swift-log handler that takes every record at `info` and drops it: swift-log's own cost.
/// (`SwiftLogNoOpLogHandler` says `critical`, so `info` would stop before the metadata is built.)
struct DiscardingLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { blackHole(event) }
}

/// swift-distributed-tracing and swift-log through Spillway's back ends, each beside the same calls into
/// a back end that does nothing (the API's own cost, which no back end can remove; issue 28 measures
/// Spillway's share as the difference).
func ecosystemBenchmarks(_ emitConfiguration: Benchmark.Configuration) {
    // MARK: The ecosystem back ends, beside the native API

    Benchmark("swift-distributed-tracing → Spillway: withSpan, 5 attributes, 1 thread", configuration: emitConfiguration) { benchmark in
        let pipeline = try emitPipeline()
        let tracer = SpillwayTracer(pipeline: pipeline, scope: "bench")
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            tracer.withSpan("GET /api/cart", ofKind: .server) { span in
                span.attributes["http.request.method"] = "GET"
                span.attributes["http.route"] = "/api/cart"
                span.attributes["http.response.status_code"] = 200
                span.attributes["user.id"] = i
                span.attributes["cache.hit"] = true
            }
        }
        benchmark.stopMeasurement()
        _ = await pipeline.shutdown(deadline: .now + .seconds(10))
    }

    // The API's own cost, which no back end can remove: the rows above are measured against these.
    Benchmark("swift-distributed-tracing → NoOpTracer: withSpan, 5 attributes (the API's own cost)", configuration: emitConfiguration) {
        benchmark in
        let tracer = NoOpTracer()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            tracer.withSpan("GET /api/cart", ofKind: .server) { span in
                span.attributes["http.request.method"] = "GET"
                span.attributes["http.route"] = "/api/cart"
                span.attributes["http.response.status_code"] = 200
                span.attributes["user.id"] = i
                span.attributes["cache.hit"] = true
            }
        }
        benchmark.stopMeasurement()
    }

    Benchmark("swift-log → a discarding handler: logger.info with 2 metadata values", configuration: emitConfiguration) { benchmark in
        let logger = Logger(label: "bench") { _ in DiscardingLogHandler() }
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            logger.info("user signed in", metadata: ["user.id": "\(i)", "tenant": "acme"])
        }
        benchmark.stopMeasurement()
    }

    Benchmark("swift-log → Spillway: logger.info with 2 metadata values", configuration: emitConfiguration) { benchmark in
        let pipeline = try emitPipeline()
        let logger = Logger(label: "bench") { SpillwayLogHandler(pipeline: pipeline, label: $0) }
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            logger.info("user signed in", metadata: ["user.id": "\(i)", "tenant": "acme"])
        }
        benchmark.stopMeasurement()
        _ = await pipeline.shutdown(deadline: .now + .seconds(10))
    }
}
