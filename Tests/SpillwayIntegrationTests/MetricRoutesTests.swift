import CoreMetrics
import Foundation
import Resilience
import ResilienceTesting
import SpillwayIntegration
import Testing

/// Metrics through routes and destinations: a metric goes to the destinations of the first route
/// whose `metricNames` match its name, each destination getting its requests in collection order,
/// through its own chain and its own part of the spill store.
@Suite struct MetricRoutesTests {
    /// Twice in one process: nothing of the first pipeline (its lanes, its destination's store) may reach the second.
    @Test func metricsGoToTheirRoutesDestinationsInOrderThroughAnOutageOfOne() async throws {
        for round in 0..<2 {
            let main = try await OTLPReceiver.start(retention: .bodies)
            let billing = try await OTLPReceiver.start(retention: .bodies)
            let directory = temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var configuration = testConfiguration(main)
            configuration.metrics.exportInterval = .milliseconds(100)
            configuration.spill = SpillConfiguration(directory: directory)
            var billingExporter = OTLPExporterConfiguration()
            billingExporter.endpoint = billing.endpoint
            let breaker = CircuitBreakerPolicy(failureThreshold: 1, cooldown: .milliseconds(200), initialCooldown: .milliseconds(200))
            configuration.destinations = [
                ExportDestination("billing", exporter: billingExporter, retry: configuration.retry, circuitBreaker: breaker)
            ]
            configuration.routes = [
                ExportRoute("billing", metricNames: ["billing.*"], destinations: ["billing"]),
                ExportRoute("shared", metricNames: ["shared.*"], destinations: ["billing", ExportDestination.pipelineExporter])
            ]
            let pipeline = try TelemetryPipeline(configuration: configuration)
            let factory = SpillwayMetricsFactory(pipeline: pipeline)
            let charges = Counter(label: "billing.charges", factory: factory)
            let shared = Counter(label: "shared.requests", factory: factory)
            let orders = Counter(label: "orders", factory: factory)
            var total = 0
            func tick(for milliseconds: Int) async throws {
                let end = ContinuousClock.now + .milliseconds(milliseconds)
                while ContinuousClock.now < end {
                    charges.increment()
                    shared.increment()
                    orders.increment()
                    total += 1
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            try await tick(for: 400)
            billing.behavior = .fail(status: 503)
            try await tick(for: 1500)
            // With the collector still down, until its requests reach the store (under the whole suite's
            // load they were once all still in retry at 1.5 s: one sample then saw 0).
            _ = await eventually(timeout: .seconds(20)) { (pipeline.stats().destinations["billing"]?.metrics.spilled ?? 0) > 0 }
            let spilled = pipeline.stats().destinations["billing"]?.metrics.spilled ?? 0
            billing.behavior = .accept
            try await tick(for: 400)
            await pipeline.forceFlush()
            let settled = await eventually(timeout: .seconds(60)) {
                let stats = pipeline.stats()
                let books = stats.destinations["billing"]?.metrics
                return stats.metrics.pending == 0 && books?.pending == 0 && books?.onDisk == 0
            }
            #expect(settled, "round \(round): \(pipeline.stats())")
            // Cumulative series report at every collection: stop collecting before counting.
            _ = await pipeline.shutdown(deadline: .now + .seconds(10))
            #expect(spilled > 0, "the billing collector's requests waited in its part of the store")
            #expect(FileManager.default.fileExists(atPath: directory + "/destinations/billing/metrics"))

            let atMain = Set(main.metricPoints.map(\.name))
            let atBilling = Set(billing.metricPoints.map(\.name))
            #expect(atMain == ["shared.requests", "orders"], "\(atMain)")
            #expect(atBilling == ["billing.charges", "shared.requests"], "\(atBilling)")
            #expect(billing.metricPoints.last { $0.name == "billing.charges" }.map { Int($0.value) } == total)
            #expect(main.metricPoints.last { $0.name == "orders" }.map { Int($0.value) } == total)
            // In time order at the destination that was down, every point once.
            let bodies = billing.bodies.filter { $0.path == "/v1/metrics" }.map(\.body)
            let stats = pipeline.stats()
            let books = try #require(stats.destinations["billing"]?.metrics)
            let result = try await MetricsTests().checkMetrics(
                bodies: bodies, expected: ["ordered": ["billing.charges", "shared.requests"], "total_points": books.exported])
            #expect(result.status == 0, "\(result.text)")
            #expect(books.droppedTotal == 0 && books.replayed > 0 && billing.metricPointCount == books.exported, "\(books)")
            // The pipeline's books: the billing-only route's points are forwarded, the rest exported.
            let billingOnly = billing.metricPoints.filter { $0.name == "billing.charges" }.count
            #expect(stats.metrics.forwarded == billingOnly, "\(stats.metrics)")
            #expect(stats.metrics.exported == main.metricPointCount && stats.metrics.droppedTotal == 0, "\(stats.metrics)")
            #expect(pipeline.unbalancedBooks().isEmpty, "\(pipeline.unbalancedBooks())")
            try await main.stop()
            try await billing.stop()
        }
    }

    @Test func aRouteWithOnlyMetricNamesIsValidAndAnEmptyPatternIsRefused() throws {
        var configuration = PipelineConfiguration()
        configuration.routes = [ExportRoute("m", metricNames: [""])]
        #expect(throws: ConfigurationError.self) { try TelemetryPipeline(configuration: configuration) }
    }
}
