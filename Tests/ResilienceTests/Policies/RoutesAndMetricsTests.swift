import MetricsTestKit
import Resilience
import ResilienceTesting
import Synchronization
import Testing

@Suite struct RouteTests {
    @Test func recordsGoToTheFirstMatchingRouteAndAreNeverBatchedWithOthers() async throws {
        let recording = RecordingExporter()
        var configuration = PipelineConfiguration(serviceName: "routes")
        configuration.traces.scheduleDelay = .milliseconds(20)
        configuration.logs.scheduleDelay = .milliseconds(20)
        configuration.routes = [
            ExportRoute("audit", scopes: ["audit.*"]),
            ExportRoute("payments", spanNames: ["payment.*"], eventNames: ["payment.?ent"])
        ]
        let pipeline = try TelemetryPipeline(configuration: configuration, exporter: recording)
        pipeline.logger(scope: "audit.login").emit(body: "signed in")
        pipeline.logger(scope: "auditor").emit(body: "not audit")  // "audit.*" needs the dot
        pipeline.logger(scope: "app").emit(body: "paid", eventName: "payment.sent")
        pipeline.logger(scope: "app").emit(body: "other event", eventName: "payment.received")
        pipeline.tracer(scope: "app").startSpan("payment.authorize").end()
        pipeline.tracer(scope: "app").startSpan("GET /").end()
        pipeline.tracer(scope: "audit.http").startSpan("payment.capture").end()  // audit comes first
        await pipeline.forceFlush()

        var byRoute: [String: [String]] = [:]
        for batch in recording.batches {
            let names =
                batch.signal == .traces
                ? try OTLPDecoding.spans(from: batch.body).map(\.name)
                : try OTLPDecoding.logRecords(from: batch.body).map { record -> String in
                    if case .string(let text)? = record.body { return text }
                    return "?"
                }
            byRoute[batch.route ?? "default", default: []] += names
        }
        #expect(Set(byRoute["audit"] ?? []) == ["signed in", "payment.capture"])
        #expect(Set(byRoute["payments"] ?? []) == ["paid", "payment.authorize"])
        #expect(Set(byRoute["default"] ?? []) == ["not audit", "other event", "GET /"])
        await shutDownCheckingBooks(pipeline)
    }

    @Test func anAuditRouteHasItsOwnHandlerAndBlocksInsteadOfDropping() async throws {
        let exporter = GatedExporter()
        let auditEvents = EventLog()
        let otherEvents = EventLog()
        var configuration = smallRingConfiguration(overflow: .dropNewest)
        configuration.exportErrorHandler = otherEvents
        configuration.routes = [
            ExportRoute("audit", scopes: ["audit"], overflowPolicy: .block(upTo: .seconds(30)), errorHandler: auditEvents)
        ]
        let pipeline = try TelemetryPipeline(configuration: configuration, exporter: exporter)
        let tracer = pipeline.tracer(scope: "app")
        for _ in 0..<500 { tracer.startSpan("s").end() }
        #expect(pipeline.stats().spans.dropped[.ringFull, default: 0] > 0, "the ring is full")
        let audit = pipeline.logger(scope: "audit")
        let blocked = Task { await onThread { audit.emit(body: "audit record") } }
        try await Task.sleep(for: .milliseconds(200))
        exporter.isOpen.store(true, ordering: .releasing)
        let result = await blocked.value
        #expect(result.isAccepted, "\(result)")
        await pipeline.forceFlush()
        #expect(pipeline.stats().logs.exported == 1 && pipeline.stats().logs.droppedTotal == 0)
        #expect(await eventually { otherEvents.droppedByReason[.ringFull] == pipeline.stats().spans.dropped[.ringFull] })
        #expect(auditEvents.all.isEmpty, "the app's drops are not the audit handler's business")
        await shutDownCheckingBooks(pipeline)
    }

    @Test func anAuditRoutesFailuresGoToItsHandlerWithTheRecords() async throws {
        let receiver = try await OTLPReceiver.start()
        receiver.behavior = .fail(status: 400)
        let auditEvents = EventLog()
        let otherEvents = EventLog()
        let pipeline = try makePipeline(
            receiver: receiver, handler: otherEvents, routes: [ExportRoute("audit", scopes: ["audit"], errorHandler: auditEvents)])
        pipeline.logger(scope: "audit").emit(severity: .warn, body: "transfer 42 refused") { $0.set("user.id", 7) }
        pipeline.logger(scope: "app").emit(body: "noise")
        await pipeline.forceFlush()
        #expect(await eventually { auditEvents.all.count == 1 && otherEvents.all.count == 1 })
        let event = try #require(auditEvents.all.first)
        #expect(event.route == "audit")
        let records = try event.logRecords()
        #expect(records.map(\.body) == [.string("transfer 42 refused")])
        #expect(records.first?.attributes.first?.key == "user.id")
        #expect(otherEvents.all.first?.route == nil)
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }
}

@Suite struct SelfMetricsTests {
    @Test func exportsAndDropsAreMeasuredWithTheOpenTelemetryNames() async throws {
        let metrics = TestMetrics()
        let receiver = try await OTLPReceiver.start()
        var configuration = PipelineConfiguration(serviceName: "metrics")
        configuration.exporter.endpoint = receiver.endpoint
        configuration.traces.scheduleDelay = .milliseconds(20)
        configuration.metricsFactory = metrics
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let tracer = pipeline.tracer(scope: "m")
        for _ in 0..<10 { tracer.startSpan("ok").end() }
        await pipeline.forceFlush()
        receiver.behavior = .fail(status: 400)
        for _ in 0..<4 { tracer.startSpan("rejected").end() }
        await pipeline.forceFlush()

        let exporter = [("otel.component.type", "otlp_http_span_exporter"), ("otel.component.name", "otlp_http_span_exporter/0")]
        // `expectCounter` matches the dimensions exactly (`counterTotal` would add the failures in).
        #expect(try metrics.expectCounter("otel.sdk.exporter.span.exported", exporter).totalValue == 10)
        #expect(try metrics.expectCounter("otel.sdk.exporter.span.exported", exporter + [("error.type", "400")]).totalValue == 4)
        #expect(try metrics.expectTimer("otel.sdk.exporter.operation.duration", exporter).values.count >= 1)
        #expect(try metrics.expectTimer("otel.sdk.exporter.operation.duration", exporter + [("error.type", "400")]).values.count >= 1)
        #expect(try metrics.expectMeter("otel.sdk.exporter.span.inflight", exporter).lastValue == 0)

        let processor = [("otel.component.type", "batching_span_processor"), ("otel.component.name", "batching_span_processor/0")]
        #expect(
            await eventually {
                (try? metrics.expectCounter("otel.sdk.processor.span.processed", processor).totalValue) == 10
                    && (try? metrics.expectCounter("otel.sdk.processor.span.processed", processor + [("error.type", "export_failed")])
                        .totalValue) == 4
            })
        #expect(try metrics.expectGauge("otel.sdk.processor.span.queue.size", processor).lastValue == 0)
        #expect(try metrics.expectGauge("spillway.ring.capacity").lastValue == Double(configuration.ringCapacity))
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }
}

@Suite struct PolicyConfigurationTests {
    @Test func invalidPolicyValuesNameTheirKey() {
        func key(_ change: (inout PipelineConfiguration) -> Void) -> String? {
            var configuration = PipelineConfiguration()
            change(&configuration)
            do {
                try configuration.validate()
                return nil
            } catch { return error.key }
        }
        #expect(key { $0.retry?.multiplier = 0.5 } == "retry.multiplier")
        #expect(key { $0.retry?.maximumDelay = .milliseconds(1) } == "retry.maximumDelay")
        #expect(key { $0.retry?.maximumAttempts = 0 } == "retry.maximumAttempts")
        #expect(key { $0.retry?.jitter = .proportional(2) } == "retry.jitter")
        #expect(key { $0.circuitBreaker?.failureThreshold = 0 } == "circuitBreaker.failureThreshold")
        #expect(key { $0.routes = [ExportRoute("a", scopes: ["x"]), ExportRoute("a", scopes: ["y"])] } == "routes[1].name")
        #expect(key { $0.routes = [ExportRoute("nothing")] } == "routes[0]")
        #expect(key { $0.routes = [ExportRoute("empty", scopes: [""])] } == "routes[0] patterns")
        #expect(
            key {
                $0.retry = nil
                $0.circuitBreaker = nil
            } == nil)
    }
}

/// Counts the calls that pass through it.
struct CountingStage: TelemetryExporter {
    let next: any TelemetryExporter
    let calls: CountCell
    var name: String { next.name }
    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        calls.value.add(1, ordering: .relaxed)
        return try await next.export(batch)
    }
}

@Suite struct ExporterChainTests {
    @Test func yourStagesSitWhereTheySaidPerAttemptInsideTheRetryLoopPerBatchOutside() async throws {
        let attempts = CountCell()
        let batches = CountCell()
        let scripted = ScriptedExporter(failing: 2, with: OTLPExportError(code: .httpStatus, statusCode: 503, message: ""))
        var configuration = PipelineConfiguration(serviceName: "stages")
        configuration.traces.scheduleDelay = .milliseconds(10)
        // No time budget: on a loaded machine the three attempts may take longer than a second.
        configuration.retry = ExportRetryPolicy(initialDelay: .milliseconds(10), jitter: .none, maximumElapsedTime: nil)
        configuration.exportStages = [
            .perAttempt { CountingStage(next: $0, calls: attempts) },
            .perBatch { CountingStage(next: $0, calls: batches) }
        ]
        let pipeline = try TelemetryPipeline(configuration: configuration, exporter: scripted)
        pipeline.tracer(scope: "s").startSpan("one").end()
        await pipeline.forceFlush()
        #expect(attempts.value.load(ordering: .relaxed) == 3 && batches.value.load(ordering: .relaxed) == 1)
        #expect(scripted.callCount == 3 && pipeline.stats().spans.exported == 1)
        #expect(pipeline.stats().exportAttempts == 3 && pipeline.stats().retries == 2)
        await shutDownCheckingBooks(pipeline)
    }

    @Test func theStandardChainRetriesOutsideTheBreaker() async throws {
        let scripted = ScriptedExporter(failing: 3, with: OTLPExportError(code: .connectionFailed, message: "refused"))
        let chain = ExporterChain.standard(
            wrapping: scripted, retry: .fastForTests, circuitBreaker: CircuitBreakerPolicy(failureThreshold: 2, cooldown: .seconds(30)),
            measured: false)
        // Two refused attempts open the breaker, which ends the retry loop with circuit_open.
        let error = await #expect(throws: ResilienceError.self) {
            try await chain.export(ExportBatch(signal: .logs, body: [], recordCount: 1, sequence: 0))
        }
        #expect(error?.code == .circuitOpen && scripted.callCount == 2)
    }
}

@Suite struct EventStreamTests {
    @Test func theStreamKeepsTheNewestEventsAndCountsWhatItLost() async throws {
        let scripted = ScriptedExporter([], afterScript: .failure(OTLPExportError(code: .httpStatus, statusCode: 400, message: "no")))
        var configuration = PipelineConfiguration(serviceName: "stream")
        configuration.traces.maxExportBatchSize = 1
        configuration.traces.scheduleDelay = .milliseconds(10)
        let pipeline = try TelemetryPipeline(configuration: configuration, exporter: scripted)
        _ = pipeline.exportFailures  // subscribes, and never reads
        let tracer = pipeline.tracer(scope: "s")
        for _ in 0..<5_000 { tracer.startSpan("refused").end() }
        await pipeline.forceFlush()
        let stats = pipeline.stats()
        #expect(stats.spans.dropped[.exportFailed] == 5_000)
        #expect(stats.handlerEvents == 5_000)
        #expect(stats.handlerEventsLost == 5_000 - 4_096, "nobody read the stream; it kept the newest 4,096")
        await shutDownCheckingBooks(pipeline)
    }
}
