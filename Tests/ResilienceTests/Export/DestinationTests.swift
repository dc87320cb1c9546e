import Foundation
import MetricsTestKit
import Resilience
import ResilienceTesting
import Testing

/// `SPILLWAY_FANOUT_OUTAGE_SECONDS`: how long the compliance collector answers 503 in the
/// fan-out test (`make soak`: 10, the figure; `make test`: 2).
private let outage = Duration.seconds(Int(ProcessInfo.processInfo.environment["SPILLWAY_FANOUT_OUTAGE_SECONDS"] ?? "") ?? 2)

private func emitAudit(_ pipeline: TelemetryPipeline, _ range: Range<Int>) {
    let logger = pipeline.logger(scope: "audit.trail")
    for i in range { logger.emit(body: "user changed a setting") { $0.set("spillway.load.seq", i) } }
}

private func emitApp(_ pipeline: TelemetryPipeline, _ range: Range<Int>) {
    let tracer = pipeline.tracer(scope: "app")
    for i in range {
        let span = tracer.startSpan("GET /cart")
        span.setAttribute("spillway.load.seq", i)
        span.end()
    }
}

/// Every book balances (with what was forwarded to destinations), the destinations' too, and
/// nothing is in flight anywhere.
private func settled(_ pipeline: TelemetryPipeline) -> Bool {
    func balanced(_ s: PipelineStats.Signal) -> Bool {
        let settledRecords: Int = s.exported + s.droppedTotal + s.onDisk + s.forwarded
        return s.pending == 0 && s.emitted + s.recovered == settledRecords
    }
    let stats = pipeline.stats()
    var all: [PipelineStats] = [stats]
    all.append(contentsOf: stats.destinations.values)
    let books = all.allSatisfy { balanced($0.spans) && balanced($0.logs) }
    return books && pipeline.unbalancedBooks().isEmpty
}

private func configuration(main: String, spill: String?) -> PipelineConfiguration {
    var configuration = PipelineConfiguration(serviceName: "destination-tests")
    configuration.exporter.endpoint = main
    configuration.traces.scheduleDelay = .milliseconds(20)
    configuration.logs.scheduleDelay = .milliseconds(20)
    configuration.overflowPolicy = .block(upTo: .seconds(10))
    configuration.retry = ExportRetryPolicy(
        initialDelay: .milliseconds(20), maximumDelay: .milliseconds(50), jitter: .none, maximumElapsedTime: .milliseconds(200))
    configuration.circuitBreaker = CircuitBreakerPolicy(failureThreshold: 3, cooldown: .milliseconds(200))
    if let spill {
        var store = SpillConfiguration(directory: spill, durability: .none, maxSegmentAge: .milliseconds(100))
        store.io = testIO
        configuration.spill = store
    }
    return configuration
}

private func temporaryDirectory() -> String {
    TestDirectory.make("destinations")
}

@Suite struct DestinationTests {
    /// The fan-out: `audit.*` to the compliance collector and the main one, the
    /// compliance one down for a while. Each gets every audit record once (by id); the app's
    /// spans, on another route, reach the main collector while the compliance one is down.
    @Test(.timeLimit(.minutes(3)))
    func anAuditRouteFansOutToTwoCollectorsEachGetsEveryRecordOnceThroughAnOutage() async throws {
        let main = try await OTLPReceiver.start(retention: [])
        let compliance = try await OTLPReceiver.start(retention: [])
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let events = EventLog()
        let metrics = TestMetrics()
        var configuration = configuration(main: main.endpoint, spill: directory)
        configuration.exportErrorHandler = events
        configuration.metricsFactory = metrics
        var complianceExporter = OTLPExporterConfiguration()
        complianceExporter.endpoint = compliance.endpoint
        configuration.destinations = [
            ExportDestination(
                "compliance", exporter: complianceExporter, retry: configuration.retry, circuitBreaker: configuration.circuitBreaker)
        ]
        configuration.routes = [ExportRoute("audit", scopes: ["audit.*"], destinations: ["compliance", ExportDestination.pipelineExporter])]
        let pipeline = try TelemetryPipeline(configuration: configuration)

        compliance.behavior = .fail(status: 503)
        let down = ContinuousClock.now
        emitAudit(pipeline, 0..<1_000)
        emitApp(pipeline, 0..<5_000)
        emitAudit(pipeline, 1_000..<2_000)
        // Not slowed: while the compliance collector refuses everything, the main one gets all.
        #expect(
            await eventually(timeout: .seconds(30)) { main.logCount >= 2_000 && main.spanCount >= 5_000 },
            "main: \(main.logCount) logs, \(main.spanCount) spans; \(pipeline.stats())")
        #expect(compliance.logCount == 0, "the compliance collector answered 503 to everything")
        // Its copies go to its part of the store once their retries are spent.
        let spilled = await eventually(timeout: .seconds(30)) { pipeline.stats().destinations["compliance"]?.logs.spilled ?? 0 > 0 }
        #expect(spilled, "the compliance copies wait in its part of the store: \(pipeline.stats())")
        #expect(FileManager.default.fileExists(atPath: directory + "/destinations/compliance/logs"))
        try await Task.sleep(until: down + outage)
        compliance.behavior = .accept
        #expect(
            await eventually(timeout: .seconds(60)) {
                // The receiver counts a request before the replayer books its answer: wait for both.
                settled(pipeline) && compliance.logCount >= 2_000 && pipeline.stats().destinations["compliance"]?.logs.onDisk == 0
            },
            "compliance: \(compliance.logCount) logs; \(pipeline.stats())")

        let atMain = main.sequenceReport(expected: 2_000, signal: .logs)
        let atCompliance = compliance.sequenceReport(expected: 2_000, signal: .logs)
        let spans = main.sequenceReport(expected: 5_000)
        #expect(atMain.missing == 0 && atMain.duplicates == 0, "main: \(atMain)")
        #expect(atCompliance.missing == 0 && atCompliance.duplicates == 0, "compliance: \(atCompliance)")
        #expect(spans.missing == 0 && spans.duplicates == 0, "main: \(spans)")
        #expect(compliance.spanCount == 0, "the app's route does not name the compliance collector")
        let stats = pipeline.stats()
        let books = try #require(stats.destinations["compliance"])
        #expect(books.logs.emitted == 2_000 && books.logs.exported == 2_000 && books.logs.replayed > 0, "\(books)")
        #expect(stats.logs.exported == 2_000 && stats.spans.exported == 5_000 && stats.logs.forwarded == 0, "\(stats)")
        #expect(stats.logs.spilled == 0, "the compliance collector's copies wait in its own part of the store only: \(stats)")
        #expect(events.all.contains { $0.destination == "compliance" && $0.route == "audit" }, "events name the destination")
        #expect(!events.all.contains { $0.destination == nil }, "the main collector never failed: \(events.all.prefix(3))")
        // Self-metrics: the destination's exporter is its own instance, its books carry its name.
        let exporter = [("otel.component.type", "otlp_http_log_exporter"), ("otel.component.name", "otlp_http_log_exporter/compliance")]
        #expect(try metrics.expectCounter("otel.sdk.exporter.log.exported", exporter).totalValue >= 2_000)
        let processor = [
            ("otel.component.type", "batching_log_processor"), ("otel.component.name", "batching_log_processor/0"),
            ("spillway.destination", "compliance")
        ]
        let measured = await eventually {
            (try? metrics.expectCounter("otel.sdk.processor.log.processed", processor).totalValue) == Int64(books.logs.exported)
        }
        #expect(measured, "\(books)")
        await shutDownCheckingBooks(pipeline)
        try await main.stop()
        try await compliance.stop()
    }

    /// A route to a destination alone, which is dead, without a spill store: its records never
    /// reach the main collector, and each is counted — dropped by a reason the handlers saw.
    /// With a byte budget of one request, the copies that find every slot taken and the queue
    /// full are dropped at once (`destination_busy`); with the default one they wait in the
    /// destination's queue until shutdown.
    @Test(.timeLimit(.minutes(3)), arguments: [false, true])
    func aRouteToADeadDestinationWithoutAStoreCountsEveryRecordAndTheRestFlows(_ tight: Bool) async throws {
        let main = try await OTLPReceiver.start(retention: [])
        let events = EventLog()
        var configuration = configuration(main: main.endpoint, spill: nil)
        if tight { configuration.logs.maxBytesInFlight = 1 }
        configuration.exportErrorHandler = events
        var dead = OTLPExporterConfiguration()
        dead.endpoint = "http://127.0.0.1:9"  // discard: nothing listens
        configuration.destinations = [ExportDestination("vault", exporter: dead, retry: nil, circuitBreaker: nil)]
        configuration.routes = [ExportRoute("audit", scopes: ["audit.*"], destinations: ["vault"])]
        let pipeline = try TelemetryPipeline(configuration: configuration)
        emitAudit(pipeline, 0..<1_500)
        emitApp(pipeline, 0..<3_000)
        #expect(await eventually(timeout: .seconds(30)) { main.spanCount >= 3_000 }, "\(pipeline.stats())")
        // The vault's copies wait in memory for a collector that never comes (the pipeline
        // holds what it cannot send), or are dropped when every slot is taken; shutdown ends
        // the wait and counts the rest.
        let emitted = await eventually(timeout: .seconds(30)) { pipeline.stats().destinations["vault"]?.logs.emitted == 1_500 }
        #expect(emitted, "\(pipeline.stats())")
        await shutDownCheckingBooks(pipeline)
        #expect(settled(pipeline), "\(pipeline.stats())")

        let stats = pipeline.stats()
        let vault = try #require(stats.destinations["vault"])
        #expect(main.logCount == 0 && stats.logs.forwarded == 1_500, "\(stats)")
        #expect(vault.logs.emitted == 1_500 && vault.logs.exported == 0 && vault.logs.droppedTotal == 1_500, "\(vault)")
        #expect((vault.logs.dropped[.destinationBusy] ?? 0 > 0) == tight, "\(vault.logs.dropped)")
        let reported = events.all.filter { event in
            guard event.destination == "vault", case .dropped = event.outcome else { return false }
            return true
        }
        #expect(reported.map(\.recordCount).reduce(0, +) == 1_500, "every drop reported: \(reported.map(\.outcome))")
        #expect(main.sequenceReport(expected: 3_000).missing == 0)
        try await main.stop()
    }

    /// What a destination could not deliver before shutdown stays in its part of the store, and
    /// the next pipeline on the directory replays it to that destination alone.
    @Test(.timeLimit(.minutes(3)))
    func aDestinationsPartOfTheStoreIsReplayedToItAloneAfterARestart() async throws {
        let main = try await OTLPReceiver.start(retention: [])
        let vault = try await OTLPReceiver.start(retention: [])
        vault.behavior = .fail(status: 503)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = configuration(main: main.endpoint, spill: directory)
        var exporter = OTLPExporterConfiguration()
        exporter.endpoint = vault.endpoint
        configuration.destinations = [
            ExportDestination("vault", exporter: exporter, retry: configuration.retry, circuitBreaker: configuration.circuitBreaker)
        ]
        configuration.routes = [ExportRoute("audit", scopes: ["audit.*"], destinations: ["vault"])]
        for round in 0..<2 {
            let pipeline = try TelemetryPipeline(configuration: configuration)
            if round == 0 {
                emitAudit(pipeline, 0..<3_000)
                emitApp(pipeline, 0..<1_000)
                let spilled = await eventually(timeout: .seconds(30)) {
                    settled(pipeline) && pipeline.stats().destinations["vault"]?.logs.onDisk == 3_000
                }
                #expect(spilled, "\(pipeline.stats())")
            } else {
                #expect(pipeline.stats().destinations["vault"]?.logs.recovered == 3_000, "\(pipeline.stats())")
                #expect(pipeline.stats().logs.recovered == 0, "the pipeline's own part holds none of them")
                vault.behavior = .accept
                let replayed = await eventually(timeout: .seconds(30)) {
                    settled(pipeline) && vault.logCount >= 3_000 && pipeline.stats().destinations["vault"]?.logs.onDisk == 0
                }
                #expect(replayed, "\(vault.logCount) at the vault; \(pipeline.stats())")
            }
            await shutDownCheckingBooks(pipeline)
        }
        let report = vault.sequenceReport(expected: 3_000, signal: .logs)
        #expect(report.missing == 0 && report.duplicates == 0, "\(report)")
        #expect(main.logCount == 0 && main.spanCount == 1_000 && vault.spanCount == 0)
        try await main.stop()
        try await vault.stop()
    }

    @Test func destinationsAreCheckedByName() throws {
        func error(_ change: (inout PipelineConfiguration) -> Void) -> ConfigurationError? {
            var configuration = PipelineConfiguration()
            configuration.destinations = [ExportDestination("compliance")]
            change(&configuration)
            do {
                try configuration.validate()
                return nil
            } catch {
                return error
            }
        }
        #expect(error { _ in } == nil)
        let unknown = error { $0.routes = [ExportRoute("audit", scopes: ["a"], destinations: ["complience"])] }
        #expect(unknown?.key == "routes[0].destinations" && unknown?.value == "complience")
        #expect(unknown?.allowed.contains("compliance, default") == true, "\(String(describing: unknown))")
        let twice = error { $0.routes = [ExportRoute("audit", scopes: ["a"], destinations: ["default", "default"])] }
        #expect(twice?.key == "routes[0].destinations")
        #expect(error { $0.destinations.append(ExportDestination("compliance")) }?.key == "destinations[1].name")
        #expect(error { $0.destinations = [ExportDestination("default")] }?.key == "destinations[0].name")
        #expect(error { $0.destinations = [ExportDestination("../up")] }?.key == "destinations[0].name")
        #expect(error { $0.destinations[0].exporter.endpoint = "ftp://x" }?.key == "destinations[0].exporter.endpoint")
        #expect(error { $0.destinations[0].retry?.multiplier = 0.5 }?.key == "destinations[0].retry.multiplier")
        #expect(error { $0.processor = .simple }?.key == "destinations")
    }

    /// A destination's exporter settings are live: its endpoint moves to another collector under
    /// load, and each record reaches exactly one of the two (by id), as the main exporter's does.
    @Test(.timeLimit(.minutes(3)))
    func aDestinationsEndpointChangesLiveUnderLoadAndEveryRecordArrivesOnce() async throws {
        let main = try await OTLPReceiver.start(retention: [])
        let before = try await OTLPReceiver.start(retention: [])
        let after = try await OTLPReceiver.start(retention: [])
        var configuration = configuration(main: main.endpoint, spill: nil)
        var vault = OTLPExporterConfiguration()
        vault.endpoint = before.endpoint
        configuration.destinations = [ExportDestination("vault", exporter: vault)]
        configuration.routes = [ExportRoute("audit", scopes: ["audit.*"], destinations: ["vault", ExportDestination.pipelineExporter])]
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let emitter = Task.detached {
            for chunk in 0..<40 {
                emitAudit(pipeline, chunk * 250..<(chunk + 1) * 250)
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        #expect(await eventually(timeout: .seconds(30)) { before.logCount > 0 })
        var moved = configuration
        moved.destinations[0].exporter.endpoint = after.endpoint
        try await pipeline.reconfigure(moved)
        await emitter.value
        #expect(
            await eventually(timeout: .seconds(30)) { settled(pipeline) && before.logCount + after.logCount >= 10_000 },
            "\(before.logCount) + \(after.logCount); \(pipeline.stats())")
        var seen = [Int](repeating: 0, count: 10_000)
        for receiver in [before, after] {
            for (seq, count) in receiver.sequenceCounts(signal: .logs).enumerated() where seq < 10_000 { seen[seq] += count }
        }
        #expect(seen.filter { $0 != 1 }.isEmpty, "\(seen.filter { $0 == 0 }.count) missing, \(seen.filter { $0 > 1 }.count) twice")
        #expect(after.logCount > 0, "the records after the change went to the new endpoint")
        let atMain = main.sequenceReport(expected: 10_000, signal: .logs)
        #expect(atMain.missing == 0 && atMain.duplicates == 0, "main: \(atMain)")
        #expect(pipeline.stats().destinations["vault"]?.logs.exported == 10_000, "\(pipeline.stats())")
        await shutDownCheckingBooks(pipeline)
        for receiver in [main, before, after] { try await receiver.stop() }
    }

    /// Which destinations there are, their retry and breaker need a restart; their exporters'
    /// other settings are live, and one that cannot be made refuses the whole configuration.
    @Test(.timeLimit(.minutes(3)))
    func reconfigureChangesADestinationsExporterAndRefusesTheRest() async throws {
        let main = try await OTLPReceiver.start(retention: [])
        let elsewhere = try await OTLPReceiver.start(retention: [])
        var configuration = configuration(main: main.endpoint, spill: nil)
        configuration.destinations = [ExportDestination("compliance")]
        let pipeline = try TelemetryPipeline(configuration: configuration)
        func refusal(_ change: (inout PipelineConfiguration) -> Void) async -> ConfigurationError? {
            var changed = configuration
            change(&changed)
            do {
                try await pipeline.reconfigure(changed)
                return nil
            } catch {
                return error
            }
        }
        let renamed = await refusal { $0.destinations[0].name = "vault" }
        #expect(renamed?.key == "destinations" && renamed?.allowed.contains("restart") == true, "\(String(describing: renamed))")
        #expect(await refusal { $0.destinations.append(ExportDestination("vault")) }?.key == "destinations")
        #expect(await refusal { $0.destinations[0].retry = ExportRetryPolicy(maximumAttempts: 2) }?.key == "destinations")
        #expect(
            await refusal { $0.destinations[0].exporter.pool = CollectorPoolConfiguration(endpoints: ["http://127.0.0.1:4399"]) }?.key
                == "destinations")
        // A CA file that cannot be read: refused by its key, and the main endpoint's change with it.
        // (Caught when the exporter is made, not by validation: the main exporter must not have
        // been replaced by then — the next span still goes to the main collector.)
        let unreadable = await refusal {
            $0.exporter.endpoint = elsewhere.endpoint
            $0.destinations[0].exporter.endpoint = "https://127.0.0.1:4397"
            $0.destinations[0].exporter.tls.certificateFile = "/no/such/ca.pem"
        }
        #expect(unreadable?.key.hasPrefix("destinations[0].exporter.") == true, "\(String(describing: unreadable))")
        #expect(pipeline.configuration.exporter.endpoint == main.endpoint)
        emitApp(pipeline, 0..<10)
        #expect(await eventually(timeout: .seconds(30)) { settled(pipeline) && main.spanCount == 10 }, "\(pipeline.stats())")
        #expect(elsewhere.spanCount == 0)
        #expect(await refusal { $0.destinations[0].exporter.endpoint = "http://127.0.0.1:4399" } == nil)
        #expect(pipeline.configuration.destinations[0].exporter.endpoint == "http://127.0.0.1:4399")
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await main.stop()
        try await elsewhere.stop()
    }
}
