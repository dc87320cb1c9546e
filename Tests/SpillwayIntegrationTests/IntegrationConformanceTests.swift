import Foundation
import Logging
import Resilience
import ResilienceTesting
import ServiceContextModule
import SpillwayIntegration
import Testing
import Tracing

/// The bytes of the ecosystem paths, read by Python's official `opentelemetry-proto`: a renamed
/// span (two name fields, the last wins), its attributes encoded at `end()`, an `exception` event,
/// and a swift-log record with exception attributes and trace correlation.
@Suite struct IntegrationConformanceTests {
    @Test func tracerAndLogHandlerBytesDecodeWithOpentelemetryProto() async throws {
        let receiver = try await OTLPReceiver.start(retention: [.records, .bodies])
        let pipeline = try TelemetryPipeline(configuration: testConfiguration(receiver))
        let tracer = SpillwayTracer(pipeline: pipeline, scope: "conformance.tracing")
        let logger = Logger(label: "conformance.logging") { SpillwayLogHandler(pipeline: pipeline, label: $0) }

        let span = tracer.startSpan("first name", ofKind: .consumer)
        span.operationName = "final name"
        span.attributes["messaging.system"] = "kafka"
        span.attributes["retries"] = 3
        span.recordError(CardDeclined(code: 7))
        ServiceContext.withValue(span.context) {
            logger.error("declined", error: CardDeclined(code: 7), metadata: ["order": "o-1"])
        }
        span.end()
        await pipeline.forceFlush()
        #expect(await eventually { receiver.spanCount == 1 && receiver.logCount == 1 })

        let bodies = receiver.bodies
        let traceBody = try #require(bodies.first { $0.path == "/v1/traces" }).body
        let logBody = try #require(bodies.first { $0.path == "/v1/logs" }).body
        let context = span.spanContext
        try await check(
            signal: "traces", body: traceBody,
            expected: [
                "records": [
                    [
                        "scope": "conformance.tracing", "name": "final name", "kind": 5,
                        "trace_id": context.traceID.description, "span_id": context.spanID.description,
                        "attributes": ["messaging.system": ["string": "kafka"], "retries": ["int": 3]],
                        "status_code": 0
                    ]
                ]
            ])
        try await check(
            signal: "logs", body: logBody,
            expected: [
                "records": [
                    [
                        "scope": "conformance.logging", "severity_number": 17, "body": ["string": "declined"],
                        "trace_id": context.traceID.description, "span_id": context.spanID.description
                    ]
                ]
            ])
        // The exception event and attributes, by name, from the same decoder.
        let script = """
            import sys
            from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
            from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
            t = trace_service_pb2.ExportTraceServiceRequest(); t.ParseFromString(open(sys.argv[1], 'rb').read())
            l = logs_service_pb2.ExportLogsServiceRequest(); l.ParseFromString(open(sys.argv[2], 'rb').read())
            e = t.resource_spans[0].scope_spans[0].spans[0].events[0]
            a = {kv.key: kv.value.string_value for kv in e.attributes}
            r = {kv.key: kv.value.string_value for kv in l.resource_logs[0].scope_logs[0].log_records[0].attributes}
            print(e.name, a['exception.type'], a['exception.message'], '|', r['exception.type'], r['exception.message'], r['order'])
            """
        let output = try await runPython(script: script, files: [traceBody, logBody])
        #expect(output.status == 0, "\(output.text)")
        #expect(
            output.text.trimmingCharacters(in: .whitespacesAndNewlines)
                == "exception SpillwayIntegrationTests.CardDeclined card declined (7) | SpillwayIntegrationTests.CardDeclined "
                + "card declined (7) o-1"
        )
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    func check(signal: String, body: [UInt8], expected: [String: Any]) async throws {
        let dir = URL(fileURLWithPath: temporaryDirectory())
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(body).write(to: dir.appendingPathComponent("body.bin"))
        try JSONSerialization.data(withJSONObject: expected).write(to: dir.appendingPathComponent("expected.json"))
        let script = repositoryRoot.appendingPathComponent("Tests/conformance/check_otlp.py").path
        let result = try await run([
            testPython, script, signal, dir.appendingPathComponent("body.bin").path, dir.appendingPathComponent("expected.json").path
        ])
        #expect(result.status == 0 && result.text.contains("0 mismatches"), "\(result.text)")
    }

    func runPython(script: String, files: [[UInt8]]) async throws -> (status: Int32, text: String) {
        let dir = URL(fileURLWithPath: temporaryDirectory())
        defer { try? FileManager.default.removeItem(at: dir) }
        var paths: [String] = []
        for (i, bytes) in files.enumerated() {
            let url = dir.appendingPathComponent("\(i).bin")
            try Data(bytes).write(to: url)
            paths.append(url.path)
        }
        try script.write(to: dir.appendingPathComponent("check.py"), atomically: true, encoding: .utf8)
        return try await run([testPython, dir.appendingPathComponent("check.py").path] + paths)
    }

    /// Waits for the child off the cooperative pool (``blockingCall(_:)``).
    func run(_ arguments: [String]) async throws -> (status: Int32, text: String) {
        try await blockingCall { try Self.runBlocking(arguments) }
    }

    static func runBlocking(_ arguments: [String]) throws -> (status: Int32, text: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
