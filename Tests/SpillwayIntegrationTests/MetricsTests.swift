import CoreMetrics
import Foundation
import Resilience
import ResilienceTesting
import SpillwayIntegration
import Testing

/// The swift-metrics back end, end to end: instruments recorded through the swift-metrics API,
/// exported as OTLP to a receiver on 127.0.0.1, the bytes read by Python's `opentelemetry-proto`.
@Suite struct MetricsTests {
    /// A pipeline that collects only when told (`forceFlush`), unless `interval` says otherwise.
    func metricsConfiguration(_ receiver: OTLPReceiver, interval: Duration = .seconds(3600)) -> PipelineConfiguration {
        var configuration = testConfiguration(receiver)
        configuration.metrics.exportInterval = interval
        return configuration
    }

    @Test func everyInstrumentArrivesAsOTLPThatOpentelemetryProtoReads() async throws {
        let receiver = try await OTLPReceiver.start(retention: .bodies)
        let pipeline = try TelemetryPipeline(configuration: metricsConfiguration(receiver))
        let factory = SpillwayMetricsFactory(pipeline: pipeline)

        Counter(label: "orders", dimensions: [("region", "eu")], factory: factory).increment(by: 5)
        // A second handler for the same series adds to it.
        Counter(label: "orders", dimensions: [("region", "eu")], factory: factory).increment(by: 2)
        Counter(label: "orders", dimensions: [("region", "us")], factory: factory).increment()
        let revenue = FloatingPointCounter(label: "revenue", factory: factory)
        revenue.increment(by: 2.5)
        revenue.increment(by: 2.25)
        let depth = Meter(label: "queue.depth", factory: factory)
        depth.set(10)
        depth.increment(by: 3)
        depth.decrement(by: 1)
        let sizes = Recorder(label: "payload.size", dimensions: [("kind", "json")], factory: factory)
        for value in [3.0, 7, 120, 20_000] { sizes.record(value) }
        Recorder(label: "temperature", aggregate: false, factory: factory).record(21.5)
        let queries = Timer(label: "db.query", factory: factory)
        queries.recordNanoseconds(2_000_000)
        queries.recordNanoseconds(300_000_000)

        await pipeline.forceFlush()
        let bodies = receiver.bodies.filter { $0.path == "/v1/metrics" }.map(\.body)
        #expect(bodies.count == 1)
        let bounds = PipelineConfiguration.Metrics.defaultHistogramBoundaries
        let timerBounds = PipelineConfiguration.Metrics.defaultTimerBoundaries
        let result = try await checkMetrics(
            bodies: bodies,
            expected: [
                "resource": ["service.name": "integration-tests"],
                "total_points": 7,
                "points": [
                    [
                        "name": "orders", "attributes": ["region": "eu"],
                        "last": ["kind": "sum", "value": 7, "temporality": 2, "monotonic": true]
                    ],
                    ["name": "orders", "attributes": ["region": "us"], "last": ["value": 1]],
                    ["name": "revenue", "last": ["kind": "sum", "value": 4.75, "monotonic": true, "scope": "swift-metrics"]],
                    ["name": "queue.depth", "last": ["kind": "gauge", "value": 12.0]],
                    [
                        "name": "payload.size", "attributes": ["kind": "json"],
                        "last": [
                            "kind": "histogram", "count": 4, "sum": 20_130.0, "min": 3.0, "max": 20_000.0, "temporality": 2,
                            "bounds": bounds, "bucket_counts": [0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
                        ]
                    ],
                    ["name": "temperature", "last": ["kind": "gauge", "value": 21.5]],
                    [
                        "name": "db.query",
                        "last": [
                            "kind": "histogram", "unit": "s", "count": 2, "sum": 0.302, "min": 0.002, "max": 0.3, "bounds": timerBounds,
                            "bucket_counts": [1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
                        ]
                    ]
                ]
            ])
        #expect(result.status == 0, "\(result.text)")
        // Spillway's own decoder reads the same.
        let points = try OTLPDecoding.metricPoints(from: bodies[0])
        #expect(points.first { $0.name == "orders" && $0.attributes["region"] == .string("eu") }?.value == 7)
        // The books: every collected data point exported.
        let stats = pipeline.stats()
        #expect(stats.metrics.emitted == 7 && stats.metrics.exported == 7 && stats.metrics.pending == 0)
        #expect(stats.metricSeries == 7)
        #expect(pipeline.unbalancedBooks().isEmpty)
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test func deltaTemporalityReportsWhatChangedSinceTheLastCollection() async throws {
        let receiver = try await OTLPReceiver.start()
        var configuration = metricsConfiguration(receiver)
        configuration.metrics.temporality = .delta
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let factory = SpillwayMetricsFactory(pipeline: pipeline)
        let counter = Counter(label: "jobs", factory: factory)
        let latency = Recorder(label: "latency", factory: factory)
        counter.increment(by: 5)
        latency.record(1)
        await pipeline.forceFlush()
        counter.increment(by: 3)
        await pipeline.forceFlush()
        await pipeline.forceFlush()  // nothing changed: no point
        let jobs = receiver.metricPoints.filter { $0.name == "jobs" }
        #expect(jobs.map(\.value) == [5, 3])
        #expect(jobs.allSatisfy { $0.temporality == 1 })
        #expect(jobs.count == 2 && jobs[1].startTimeUnixNano == jobs[0].timeUnixNano)
        let histogram = receiver.metricPoints.filter { $0.name == "latency" }
        #expect(histogram.count == 1 && histogram.first?.count == 1)
        // A reset counter begins again: the next delta is what came after the reset.
        counter.reset()
        counter.increment(by: 2)
        await pipeline.forceFlush()
        #expect(receiver.metricPoints.filter { $0.name == "jobs" }.map(\.value) == [5, 3, 2])
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test func attributeSetsPastTheCardinalityLimitShareTheOverflowSeries() async throws {
        let receiver = try await OTLPReceiver.start()
        var configuration = metricsConfiguration(receiver)
        configuration.metrics.cardinalityLimit = 3
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let factory = SpillwayMetricsFactory(pipeline: pipeline)
        for user in 0..<6 { Counter(label: "logins", dimensions: [("user", "u\(user)")], factory: factory).increment(by: 10) }
        await pipeline.forceFlush()
        let points = receiver.metricPoints.filter { $0.name == "logins" }
        #expect(points.count == 3)
        let overflow = points.first { $0.attributes["otel.metric.overflow"] == .bool(true) }
        #expect(overflow?.value == 40)  // users 2…5
        #expect(points.reduce(0) { $0 + $1.value } == 60)
        #expect(pipeline.stats().metricAttributeSetsOverflowed == 4)
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    /// Metrics recorded before, during and after an outage, with a spill store: every collection
    /// arrives, in time order, with the time it was collected at, and nothing is counted twice.
    /// `SPILLWAY_METRICS_OUTAGE_SECONDS` (default 2) sets the outage; `make soak` runs 30.
    @Test func metricsOfAnOutageArriveInOrderWithTheirOriginalTimes() async throws {
        let outage = Double(ProcessInfo.processInfo.environment["SPILLWAY_METRICS_OUTAGE_SECONDS"] ?? "") ?? 2
        for round in 0..<2 {  // twice, in one process: nothing may leak from the first pipeline to the second
            let receiver = try await OTLPReceiver.start(retention: .bodies)
            var configuration = metricsConfiguration(receiver, interval: .milliseconds(100))
            configuration.spill = SpillConfiguration(directory: temporaryDirectory())
            // A short queue: requests waiting behind the backlog must still reach the disk in order.
            configuration.metrics.maxQueuedRequests = 2
            configuration.circuitBreaker = CircuitBreakerPolicy(
                failureThreshold: 1, cooldown: .milliseconds(200), initialCooldown: .milliseconds(200))
            let pipeline = try TelemetryPipeline(configuration: configuration)
            let factory = SpillwayMetricsFactory(pipeline: pipeline)
            let ticks = Counter(label: "ticks", factory: factory)
            let work = Timer(label: "work", factory: factory)
            var total = 0
            func tick(for seconds: Double) async throws {
                let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
                while ContinuousClock.now < end {
                    ticks.increment()
                    work.recordNanoseconds(1_000_000)
                    total += 1
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            try await tick(for: 0.5)
            receiver.behavior = .fail(status: 503)
            try await tick(for: outage)
            // Still down: the outage's requests reach the disk (waited on with a deadline — a fresh
            // clone's run, the whole suite starting at once, once had none there yet at 2 s).
            let onDiskDuringOutage = await eventually(timeout: .seconds(20)) { pipeline.stats().metrics.onDisk > 0 }
            // A collector slower than the collections while the backlog replays: new requests
            // must wait behind the backlog, or they would arrive before older ones.
            receiver.behavior = .delay(.milliseconds(30))
            try await tick(for: 0.5)
            await pipeline.forceFlush()
            // Wait on the books: every collected point exported (the replay may still run).
            let settled = await eventually(timeout: .seconds(60)) {
                let s = pipeline.stats().metrics
                return s.onDisk == 0 && s.pending == 0 && s.exported == s.emitted
            }
            let stats = pipeline.stats().metrics
            #expect(settled, "round \(round): \(pipeline.stats())")
            #expect(onDiskDuringOutage, "round \(round): nothing was spilled during the outage")
            #expect(stats.droppedTotal == 0 && stats.spilled > 0 && stats.replayed > 0)
            #expect(receiver.metricPointCount == stats.exported, "every exported point once at the receiver")
            let last = receiver.metricPoints.last { $0.name == "ticks" }
            #expect(last.map { Int($0.value) } == total, "the last cumulative value is every increment")
            let bodies = receiver.bodies.filter { $0.path == "/v1/metrics" }.map(\.body)
            let result = try await checkMetrics(
                bodies: bodies,
                expected: [
                    "ordered": ["ticks", "work"], "total_points": stats.exported,
                    "points": [["name": "ticks", "last": ["value": total]], ["name": "work", "last": ["count": total]]]
                ])
            #expect(result.status == 0, "round \(round): \(result.text)")
            #expect(pipeline.unbalancedBooks().isEmpty)
            _ = await pipeline.shutdown(deadline: .now + .seconds(10))
            try await receiver.stop()
        }
    }

    /// `OTEL_METRIC_EXPORT_TIMEOUT`: a request whose retries would go on past it (no retry
    /// budget, no breaker) ends at it instead, dropped and told, so the next one is not held back.
    @Test func aMetricsRequestIsNotRetriedPastTheExportTimeout() async throws {
        let receiver = try await OTLPReceiver.start()
        receiver.behavior = .fail(status: 503)
        var configuration = metricsConfiguration(receiver)
        configuration.retry = ExportRetryPolicy(
            initialDelay: .milliseconds(50), maximumDelay: .milliseconds(50), multiplier: 1, jitter: .none, maximumElapsedTime: nil)
        configuration.circuitBreaker = nil
        configuration.metrics.exportTimeout = .seconds(5)
        let pipeline = try TelemetryPipeline(configuration: configuration)
        Counter(label: "jobs", factory: SpillwayMetricsFactory(pipeline: pipeline)).increment()
        let flushing = Task { await pipeline.forceFlush() }
        let ended = await eventually(timeout: .seconds(60)) { pipeline.stats().metrics.dropped[.exportFailed] == 1 }
        flushing.cancel()
        await flushing.value
        #expect(ended, "\(pipeline.stats().metrics)")
        #expect(receiver.diagnostics.statuses[503, default: 0] >= 2, "it was retried until the timeout")
        #expect(pipeline.unbalancedBooks().isEmpty)
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test func twoPipelinesKeepTheirOwnSeries() async throws {
        let first = try await OTLPReceiver.start()
        let second = try await OTLPReceiver.start()
        let a = try TelemetryPipeline(configuration: metricsConfiguration(first))
        let b = try TelemetryPipeline(configuration: metricsConfiguration(second))
        Counter(label: "requests", factory: SpillwayMetricsFactory(pipeline: a)).increment(by: 4)
        Counter(label: "requests", factory: SpillwayMetricsFactory(pipeline: b)).increment(by: 9)
        await a.forceFlush()
        await b.forceFlush()
        #expect(first.metricPoints.map(\.value) == [4])
        #expect(second.metricPoints.map(\.value) == [9])
        _ = await a.shutdown(deadline: .now + .seconds(5))
        _ = await b.shutdown(deadline: .now + .seconds(5))
        try await first.stop()
        try await second.stop()
    }

    /// Runs `Tests/conformance/check_metrics.py` on `bodies` with `expected`.
    func checkMetrics(bodies: [[UInt8]], expected: [String: Any]) async throws -> (status: Int32, text: String) {
        let dir = URL(fileURLWithPath: temporaryDirectory())
        defer { try? FileManager.default.removeItem(at: dir) }
        try JSONSerialization.data(withJSONObject: expected).write(to: dir.appendingPathComponent("expected.json"))
        var paths: [String] = []
        for (i, body) in bodies.enumerated() {
            let url = dir.appendingPathComponent("\(i).bin")
            try Data(body).write(to: url)
            paths.append(url.path)
        }
        let script = repositoryRoot.appendingPathComponent("Tests/conformance/check_metrics.py").path
        let arguments = [testPython, script, dir.appendingPathComponent("expected.json").path] + paths
        return try await blockingCall { try IntegrationConformanceTests.runBlocking(arguments) }
    }
}
