import Instrumentation
import Resilience
import ResilienceTesting
import ServiceContextModule
import SpillwayIntegration
import Testing
import Tracing

@Suite("swift-distributed-tracing back end")
struct TracingTests {
    @Test("withSpan through the Tracer protocol: parents, attributes read back, rename, events, errors, links")
    func spansThroughTheProtocol() async throws {
        let receiver = try await OTLPReceiver.start()
        let pipeline = try TelemetryPipeline(configuration: testConfiguration(receiver))
        let tracer = SpillwayTracer(pipeline: pipeline, scope: "orders")

        struct PaymentDeclined: Error {}
        var linked: ServiceContext?
        try await tracer.withSpan("GET /orders", ofKind: .server) { parent in
            parent.attributes["http.request.method"] = "GET"
            parent.attributes["http.response.status_code"] = 200
            parent.updateAttributes { $0["retries"] = [1, 2] }
            #expect(parent.attributes["http.request.method"]?.toSpanAttribute() == .string("GET"))
            parent.operationName = "GET /orders/{id}"
            parent.addEvent(SpanEvent(name: "cache.miss", attributes: ["key": "o-1"]))
            linked = parent.context
            // A child through the task-local context, as instrumented libraries do.
            try await tracer.withSpan("SELECT orders", ofKind: .client) { child in
                child.attributes["db.system.name"] = "postgresql"
            }
            do {
                try tracer.withSpan("charge") { (_: SpillwaySpan) throws -> Void in throw PaymentDeclined() }
            } catch {}
        }
        let follower = tracer.startSpan("follow-up")
        follower.addLink(SpanLink(context: linked!, attributes: ["why": "retry"]))
        follower.end()

        await pipeline.forceFlush()
        #expect(await eventually { receiver.spans.count == 4 })
        let spans = Dictionary(uniqueKeysWithValues: receiver.spans.map { ($0.name, $0) })
        let parent = try #require(spans["GET /orders/{id}"], "renamed span: \(receiver.spans.map(\.name))")
        let child = try #require(spans["SELECT orders"])
        let charge = try #require(spans["charge"])
        let follow = try #require(spans["follow-up"])
        #expect(parent.scopeName == "orders")
        #expect(parent.kind == 2 && child.kind == 3)
        #expect(parent.attributes["http.request.method"] == .string("GET"))
        #expect(parent.attributes["http.response.status_code"] == .int(200))
        #expect(parent.attributes["retries"] == .array([.int(1), .int(2)]))
        #expect(parent.events.map(\.name) == ["cache.miss"])
        #expect(child.traceID == parent.traceID && child.parentSpanID == parent.spanID)
        #expect(charge.parentSpanID == parent.spanID)
        #expect(charge.statusCode == 2)
        let exception = try #require(charge.events.first { $0.name == "exception" })
        #expect(exception.attributes["exception.type"] == .string("SpillwayIntegrationTests.TracingTests.PaymentDeclined"))
        #expect(follow.parentSpanID == SpanID(0) && follow.traceID != parent.traceID)
        #expect(follow.links.first?.spanID == parent.spanID && follow.links.first?.attributes["why"] == .string("retry"))
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test("W3C traceparent: inject and extract round-trip; invalid headers are ignored")
    func traceContextPropagation() async throws {
        let receiver = try await OTLPReceiver.start()
        let pipeline = try TelemetryPipeline(configuration: testConfiguration(receiver))
        let tracer = SpillwayTracer(pipeline: pipeline)

        struct Headers: Extractor, Injector {
            func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
            func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
        }
        var incoming = ServiceContext.topLevel
        tracer.extract(
            ["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "vendor=x"], into: &incoming,
            using: Headers())
        let remote = try #require(incoming.spillwaySpanContext)
        #expect(remote.traceID.description == "4bf92f3577b34da6a3ce929d0e0e4736" && remote.isRemote && remote.traceState == "vendor=x")

        let span = tracer.startSpan("handle", context: incoming, ofKind: .server)
        var outgoing: [String: String] = [:]
        tracer.inject(span.context, into: &outgoing, using: Headers())
        span.end()
        #expect(outgoing["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-\(span.spanContext.spanID)-01")
        #expect(outgoing["tracestate"] == "vendor=x")

        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // all-zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // all-zero span id
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  // version 00 with more
            "garbage"
        ] {
            var context = ServiceContext.topLevel
            tracer.extract(["traceparent": bad], into: &context, using: Headers())
            #expect(context.spillwaySpanContext == nil, "accepted \(bad)")
        }
        await pipeline.forceFlush()
        #expect(await eventually { receiver.spans.count == 1 })
        let received = try #require(receiver.spans.first)
        #expect(received.parentSpanID.description == "00f067aa0ba902b7" && received.traceState == "vendor=x")
        #expect(received.flags & 0x300 == 0x300, "is-remote parent flags: \(received.flags)")
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test("parent-based trace-id ratio sampling: deterministic per trace id, children follow, unsampled spans export nothing")
    func sampling() async throws {
        let receiver = try await OTLPReceiver.start()
        var configuration = testConfiguration(receiver)
        configuration.sampler = .parentBased(root: .traceIDRatio(0.25))
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let tracer = SpillwayTracer(pipeline: pipeline)

        var sampledRoots = 0
        var sampledTraceIDs: Set<TraceID> = []
        for _ in 0..<4000 {
            let root = tracer.startSpan("root")
            let child = tracer.startSpan("child", context: root.context)
            let decision = root.isRecording
            #expect(child.isRecording == decision)
            #expect(child.spanContext.traceID == root.spanContext.traceID)
            #expect((root.spanContext.traceFlags & 1 == 1) == decision)
            // The same trace id gets the same decision from the sampler, every time.
            #expect(configuration.sampler.shouldSample(traceID: root.spanContext.traceID, parent: nil) == decision)
            if decision {
                sampledRoots += 1
                sampledTraceIDs.insert(root.spanContext.traceID)
            }
            child.end()
            root.end()
        }
        // 4000 trials at p = 0.25: mean 1000, standard deviation 27; ±6σ.
        #expect((840...1160).contains(sampledRoots), "sampled \(sampledRoots) of 4000")
        await pipeline.forceFlush()
        #expect(await eventually { receiver.spans.count == sampledRoots * 2 })
        #expect(Set(receiver.spans.map(\.traceID)) == sampledTraceIDs)
        #expect(pipeline.stats().spans.emitted == sampledRoots * 2, "unsampled spans are not counted")

        // A sampled remote parent wins over the ratio; an unsampled one too.
        let sampledParent = Resilience.SpanContext(traceID: TraceID(high: 1, low: .max), spanID: SpanID(7), traceFlags: 1, isRemote: true)
        let unsampledParent = Resilience.SpanContext(traceID: TraceID(high: 1, low: 0), spanID: SpanID(7), traceFlags: 0, isRemote: true)
        #expect(configuration.sampler.shouldSample(traceID: sampledParent.traceID, parent: sampledParent))
        #expect(!configuration.sampler.shouldSample(traceID: unsampledParent.traceID, parent: unsampledParent))
        // Without parent-based, the ratio decides even under a sampled parent (low id → in, high id → out).
        #expect(!TraceSampler.traceIDRatio(0.25).shouldSample(traceID: sampledParent.traceID, parent: sampledParent))
        #expect(TraceSampler.traceIDRatio(0.25).shouldSample(traceID: unsampledParent.traceID, parent: unsampledParent))
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }
}
