import CoreMetrics
import Foundation
import Resilience
import ResilienceTesting
import SpillwayIntegration
import Testing

/// Base-2 exponential histograms (`OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`),
/// recorded through the swift-metrics API, exported over OTLP/HTTP and read by
/// `opentelemetry-proto`; the checker computes each value's bucket itself, exactly.
@Suite struct ExponentialHistogramTests {
    func pipeline(_ receiver: OTLPReceiver, maxSize: Int = 160, temporality: PipelineConfiguration.Metrics.Temporality = .cumulative)
        throws -> TelemetryPipeline
    {
        var configuration = testConfiguration(receiver)
        configuration.metrics.exportInterval = .seconds(3600)
        configuration.metrics.histogramAggregation = .base2ExponentialBucketHistogram
        configuration.metrics.exponentialMaxSize = maxSize
        configuration.metrics.temporality = temporality
        return try TelemetryPipeline(configuration: configuration)
    }

    @Test func recordersAndTimersArriveAsExponentialHistogramsInTheRightBuckets() async throws {
        let receiver = try await OTLPReceiver.start(retention: .bodies)
        let pipeline = try pipeline(receiver)
        let factory = SpillwayMetricsFactory(pipeline: pipeline)
        // A narrow range: scale 3, the finest recorded.
        let sizes: [Double] = [100, 101, 120, 150, 199, 199]
        let recorder = Recorder(label: "payload.size", dimensions: [("kind", "json")], factory: factory)
        for value in sizes { recorder.record(value) }
        // 1 µs to 10 s: 23 powers of two, 184 buckets at scale 3, so scale 2.
        let nanoseconds: [Int64] = [1_000, 3_000, 50_000, 2_000_000, 300_000_000, 10_000_000_000]
        let timer = Timer(label: "db.query", factory: factory)
        for value in nanoseconds { timer.recordNanoseconds(value) }
        // Negative values, zeros, and one value 2^99 far beyond its window (placed around 3):
        // a coarse bucket, so the point is at scale −4.
        let balances: [Double] = [-5, -0.25, 0, 0, 3, 1e30, -7.5]
        let balance = Recorder(label: "balance", factory: factory)
        for value in balances { balance.record(value) }
        // Infinities and NaN have no bucket: left out.
        balance.record(Double.infinity)
        balance.record(Double.nan)

        await pipeline.forceFlush()
        let bodies = receiver.bodies.filter { $0.path == "/v1/metrics" }.map(\.body)
        #expect(bodies.count == 1)
        let seconds = nanoseconds.map { Double($0) / 1e9 }
        let result = try await MetricsTests().checkMetrics(
            bodies: bodies,
            expected: [
                "total_points": 3,
                "points": [
                    [
                        "name": "payload.size", "attributes": ["kind": "json"], "values": sizes,
                        "last": [
                            "kind": "exponential_histogram", "scale": 3, "count": 6, "sum": sizes.reduce(0, +), "min": 100.0,
                            "max": 199.0, "temporality": 2, "zero_count": 0
                        ]
                    ],
                    [
                        "name": "db.query", "values": seconds,
                        "last": ["unit": "s", "scale": 2, "count": 6, "sum": seconds.reduce(0, +), "min": 1e-6, "max": 10.0]
                    ],
                    [
                        "name": "balance", "values": balances,
                        "last": ["scale": -4, "count": 7, "zero_count": 2, "sum": balances.reduce(0, +), "min": -7.5, "max": 1e30]
                    ]
                ]
            ])
        #expect(result.status == 0, "\(result.text)")
        // Spillway's own decoder reads the same.
        let points = try OTLPDecoding.metricPoints(from: bodies[0])
        let query = points.first { $0.name == "db.query" }
        #expect(query?.kind == .exponentialHistogram && query?.scale == 2 && query?.count == 6)
        #expect(pipeline.unbalancedBooks().isEmpty)
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test func aSmallMaxSizeMergesBucketsAndDeltaReportsOnlyTheNewValues() async throws {
        let receiver = try await OTLPReceiver.start(retention: .bodies)
        let pipeline = try pipeline(receiver, maxSize: 4, temporality: .delta)
        let factory = SpillwayMetricsFactory(pipeline: pipeline)
        let recorder = Recorder(label: "latency", factory: factory)
        let first: [Double] = [1, 2, 3, 50, 1000]
        for value in first { recorder.record(value) }
        await pipeline.forceFlush()
        let second: [Double] = [0.5, 0.75]
        for value in second { recorder.record(value) }
        await pipeline.forceFlush()
        let bodies = receiver.bodies.filter { $0.path == "/v1/metrics" }.map(\.body)
        #expect(bodies.count == 2)
        // 1 … 1000 is 10 powers of two: 4 buckets need scale −2 (4 powers of two each).
        let firstCheck = try await MetricsTests().checkMetrics(
            bodies: [bodies[0]],
            expected: ["points": [["name": "latency", "values": first, "max_size": 4, "last": ["scale": -2, "temporality": 1]]]])
        #expect(firstCheck.status == 0, "\(firstCheck.text)")
        // Delta: only what came after the first collection, at the scale that fits it.
        let secondCheck = try await MetricsTests().checkMetrics(
            bodies: [bodies[1]],
            expected: ["points": [["name": "latency", "values": second, "max_size": 4, "last": ["scale": 2, "count": 2]]]])
        #expect(secondCheck.status == 0, "\(secondCheck.text)")
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    /// The status endpoint's `/metrics` shows an exponential histogram as a classic one, whose
    /// `le` bounds are the buckets' upper bounds: `prometheus_client` parses it, and the
    /// cumulative counts agree with the values.
    @Test func aScrapeShowsAnExponentialHistogramAsClassicBuckets() async throws {
        let receiver = try await OTLPReceiver.start()
        var configuration = testConfiguration(receiver)
        configuration.metrics.exportInterval = .seconds(3600)
        configuration.metrics.histogramAggregation = .base2ExponentialBucketHistogram
        configuration.statusEndpoint = PipelineConfiguration.StatusEndpoint(port: 0)
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let values: [Double] = [-2, 0, 0.5, 3, 3, 100]
        let recorder = Recorder(label: "payload.size", factory: SpillwayMetricsFactory(pipeline: pipeline))
        for value in values { recorder.record(value) }
        let port = try #require(pipeline.statusEndpointPort)
        let status = StatusEndpointTests()
        let scrape = try await status.http(port, "GET", "/metrics")
        let buckets = try await status.parsePrometheus(scrape.body).filter { $0.name == "payload_size_bucket" }
        #expect(buckets.count > 4, "\(scrape.body)")
        // For each bound, the cumulative count is the values at or below it (0.5 sits on one).
        for bucket in buckets {
            let bound = bucket.labels["le"].flatMap { $0 == "+Inf" ? Double.infinity : Double($0) } ?? .nan
            #expect(bucket.value == Double(values.filter { $0 <= bound }.count), "le=\(bound)")
        }
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test func theAggregationIsReadFromTheEnvironmentAndAnUnknownOneIsRefusedByName() throws {
        let ok = try PipelineConfiguration.fromEnvironment([
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "BASE2_EXPONENTIAL_BUCKET_HISTOGRAM"
        ])
        #expect(ok.metrics.histogramAggregation == .base2ExponentialBucketHistogram)
        do {
            _ = try PipelineConfiguration.fromEnvironment(["OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "summary"])
            Issue.record("accepted an unknown aggregation")
        } catch {
            #expect(error.key == "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION")
            #expect(error.allowed.contains("base2_exponential_bucket_histogram"))
        }
        var configuration = PipelineConfiguration()
        configuration.metrics.exponentialMaxSize = 1
        #expect(throws: ConfigurationError.self) { try TelemetryPipeline(configuration: configuration) }
    }
}
