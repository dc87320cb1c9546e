import Logging
import Resilience
import ResilienceTesting
import ServiceContextModule
import SpillwayIntegration
import Testing

struct CardDeclined: Error, CustomStringConvertible {
    var code: Int
    var description: String { "card declined (\(code))" }
}

@Suite("swift-log back end and exceptions on log records")
struct LoggingTests {
    @Test("a swift-log Logger writes records: severity, metadata as attributes, source location, trace correlation, LogEvent.error")
    func swiftLogRecords() async throws {
        let receiver = try await OTLPReceiver.start()
        let pipeline = try TelemetryPipeline(configuration: testConfiguration(receiver))
        var logger = Logger(label: "checkout.payments") { label in SpillwayLogHandler(pipeline: pipeline, label: label, logLevel: .debug) }
        logger[metadataKey: "tenant"] = "acme"

        logger.trace("not at this level")
        logger.notice("order placed", metadata: ["order.id": "o-17", "items": ["a", "b"], "total": .stringConvertible(42)])
        let active = Resilience.SpanContext(traceID: TraceID(high: 0xAB, low: 0xCD), spanID: SpanID(0xEF), traceFlags: 1)
        var context = ServiceContext.topLevel
        context.spillwaySpanContext = active
        ServiceContext.withValue(context) {
            logger.error("payment failed", error: CardDeclined(code: 51))
        }

        await pipeline.forceFlush()
        #expect(await eventually { receiver.logRecords.count == 2 })
        let records = Dictionary(uniqueKeysWithValues: receiver.logRecords.map { ($0.bodyText, $0) })
        let placed = try #require(records["order placed"], "\(records.keys)")
        #expect(placed.scopeName == "checkout.payments")
        #expect(placed.severityNumber == 10 && placed.severityText == "INFO2")
        #expect(placed.attributes["tenant"] == .string("acme"))
        #expect(placed.attributes["order.id"] == .string("o-17"))
        #expect(placed.attributes["items"] == .array([.string("a"), .string("b")]))
        #expect(placed.attributes["total"] == .string("42"))
        #expect(placed.attributes["code.function.name"] == .string("swiftLogRecords()"))
        #expect(
            placed.attributes["code.file.path"] == .string("SpillwayIntegrationTests/LoggingTests.swift"),
            "\(String(describing: placed.attributes["code.file.path"]))")
        #expect(placed.traceID == TraceID(high: 0, low: 0), "no active span, no trace id")

        let failed = try #require(records["payment failed"])
        #expect(failed.severityNumber == 17)
        #expect(failed.traceID == active.traceID && failed.spanID == active.spanID && failed.flags == 1)
        #expect(failed.attributes["exception.type"] == .string("SpillwayIntegrationTests.CardDeclined"))
        #expect(failed.attributes["exception.message"] == .string("card declined (51)"))
        #expect(failed.attributes["exception.stacktrace"] == nil, "the bridge captures no stack trace when the setting is unset")
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    /// The call's metadata wins over the provider's, which wins over the handler's; each key is
    /// written once (with a limit of exactly the attributes expected, a key written twice would
    /// push one out and count it as dropped).
    @Test("metadata precedence: call over provider over handler, each key once")
    func metadataPrecedence() async throws {
        let receiver = try await OTLPReceiver.start()
        var configuration = testConfiguration(receiver)
        configuration.limits = AttributeLimits(countLimit: 7)
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let provider = Logger.MetadataProvider { ["region": "us", "request.id": "r-1"] }
        var logger = Logger(label: "precedence") { SpillwayLogHandler(pipeline: pipeline, label: $0, metadataProvider: provider) }
        logger[metadataKey: "tenant"] = "acme"
        logger[metadataKey: "region"] = "eu"
        logger.info("merged", metadata: ["tenant": "beta"])
        logger.info("handler and provider only")
        await pipeline.forceFlush()
        #expect(await eventually { receiver.logRecords.count == 2 })
        let records = Dictionary(uniqueKeysWithValues: receiver.logRecords.map { ($0.bodyText, $0) })
        let merged = try #require(records["merged"])
        #expect(merged.attributes["tenant"] == .string("beta") && merged.attributes["region"] == .string("us"), "\(merged.attributes)")
        #expect(merged.attributes["request.id"] == .string("r-1") && merged.attributes.count == 7, "\(merged.attributes)")
        #expect(merged.droppedAttributesCount == 0)
        let plain = try #require(records["handler and provider only"])
        #expect(plain.attributes["tenant"] == .string("acme") && plain.attributes["region"] == .string("us"), "\(plain.attributes)")
        #expect(plain.attributes.count == 7 && plain.droppedAttributesCount == 0, "\(plain.attributes)")
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test("the stack-trace threshold: unset (native logger: error), set explicitly (bridges too), never; caller attributes win")
    func stackTraceThreshold() async throws {
        let receiver = try await OTLPReceiver.start()
        let pipeline = try TelemetryPipeline(configuration: testConfiguration(receiver))
        let native = pipeline.logger(scope: "native")
        let error = CardDeclined(code: 5)
        native.emit(severity: .warn, body: "warn, unset", error: error)
        native.emit(severity: .error, body: "error, unset", error: error)
        native.emit(severity: .error, body: "caller wins", error: error) { $0.set("exception.message", "redacted") }
        native.emit(severity: .fatal, body: "no error")

        var explicit = testConfiguration(receiver)
        explicit.exceptionStackTraces = .atOrAbove(.warn)
        let configured = try TelemetryPipeline(configuration: explicit)
        let bridge = Logger(label: "bridge") { SpillwayLogHandler(pipeline: configured, label: $0) }
        bridge.warning("bridge, warn, explicit", error: error)
        bridge.info("bridge, info, explicit", error: error)
        var never = testConfiguration(receiver)
        never.exceptionStackTraces = .never
        let quiet = try TelemetryPipeline(configuration: never)
        quiet.logger(scope: "quiet").emit(severity: .fatal, body: "fatal, never", error: error)

        for p in [pipeline, configured, quiet] { await p.forceFlush() }
        #expect(await eventually { receiver.logRecords.count == 7 })
        let records = Dictionary(uniqueKeysWithValues: receiver.logRecords.map { ($0.bodyText, $0) })
        func hasTrace(_ body: String) -> Bool? { records[body].map { $0.attributes["exception.stacktrace"] != nil } }
        #expect(hasTrace("warn, unset") == false)
        #expect(hasTrace("error, unset") == true)
        #expect(hasTrace("bridge, warn, explicit") == true)
        #expect(hasTrace("bridge, info, explicit") == false)
        #expect(hasTrace("fatal, never") == false)
        #expect(records["no error"]?.attributes.keys.contains { $0.hasPrefix("exception.") } == false)
        let wins = try #require(records["caller wins"])
        #expect(wins.attributes["exception.message"] == .string("redacted"))
        #expect(wins.attributes["exception.type"] == .string("SpillwayIntegrationTests.CardDeclined"))
        // The trace names this test's frame, not Spillway's own.
        if case .string(let trace)? = records["error, unset"]?.attributes["exception.stacktrace"] {
            #expect(trace.contains("stackTraceThreshold"), "\(trace.prefix(400))")
            #expect(!trace.split(separator: "\n").first!.contains("ExceptionAttributes"))
        } else {
            Issue.record("no stack trace")
        }
        for p in [pipeline, configured, quiet] { _ = await p.shutdown(deadline: .now + .seconds(5)) }
        try await receiver.stop()
    }
}

extension DecodedLogRecord {
    /// The body when it is a string.
    var bodyText: String {
        if case .string(let s)? = body { return s }
        return ""
    }
}
