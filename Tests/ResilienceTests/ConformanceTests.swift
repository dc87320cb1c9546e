import Foundation
import Resilience
import ResilienceTesting
import Testing

/// Checks the encoder with an implementation that is not ours: the request bytes that reached
/// the receiver are parsed by Python's official `opentelemetry-proto`, field by field.
@Suite struct ConformanceTests {
    func check(signal: String, body: [UInt8], expected: [String: Any]) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-conformance-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bodyURL = dir.appendingPathComponent("body.bin")
        let expectedURL = dir.appendingPathComponent("expected.json")
        try Data(body).write(to: bodyURL)
        try JSONSerialization.data(withJSONObject: expected).write(to: expectedURL)
        let script = repositoryRoot.appendingPathComponent("Tests/conformance/check_otlp.py").path
        let (status, output) = try await runPython([script, signal, bodyURL.path, expectedURL.path])
        #expect(status == 0, "\(output)")
        #expect(output.contains("0 mismatches"), "\(output)")
    }

    @Test func spansWithEveryAttributeTypeDecodeWithOpentelemetryProto() async throws {
        let receiver = try await OTLPReceiver.start(retention: [.records, .bodies])
        let pipeline = try makePipeline(receiver: receiver, limits: AttributeLimits(countLimit: 12))
        let tracer = pipeline.tracer(scope: "conformance.traces", version: "9.9")
        let large = String(repeating: "ü€𝄞x", count: 5_000)
        let invalidUTF8 = String(decoding: [0x66, 0xFF, 0xFE, 0x6F], as: UTF8.self)

        let parent = tracer.startSpan("parent ✓", kind: .server, startTime: 1_700_000_000_000_000_000)
        let child = tracer.startSpan("", kind: .client, parent: parent.context, startTime: 1_700_000_000_000_000_100)
        child.setAttribute("string", "héllo wörld 🌍")
        child.setAttribute("empty", "")
        child.setAttribute("bool", true)
        child.setAttribute("int", -42)
        child.setAttribute("int.max", Int.max)
        child.setAttribute("double", 3.25)
        child.setAttribute("bytes", .bytes([0, 1, 2, 255]))
        child.setAttributes {
            $0.set("strings", ["a", "", "ç"])
            $0.set("ints", [1, -2, 300_000])
            $0.set("doubles", [0.5, -1.5])
            $0.set("bools", [true, false])
        }
        child.setAttribute("large", large)
        child.setAttribute("invalid.utf8", invalidUTF8)
        child.setAttribute("over.the.limit", "dropped")
        child.addEvent("retry", at: 1_700_000_000_000_000_150) { $0.set("attempt", 2) }
        child.addLink(parent.context) { $0.set("link.kind", "follows") }
        child.setStatus(.error("boom"))
        child.end(at: 1_700_000_000_000_000_200)
        parent.end(at: 1_700_000_000_000_000_300)
        await pipeline.forceFlush()
        #expect(receiver.spanCount == 2)

        let traceID = parent.context.traceID.description
        let childRecord: [String: Any] = [
            "scope": "conformance.traces",
            "trace_id": traceID, "span_id": child.context.spanID.description,
            "parent_span_id": parent.context.spanID.description, "name": "", "kind": 3,
            "start": 1_700_000_000_000_000_100, "end": 1_700_000_000_000_000_200,
            "attributes": [
                "string": ["string": "héllo wörld 🌍"], "empty": ["string": ""], "bool": ["bool": true],
                "int": ["int": -42], "int.max": ["int": Int.max], "double": ["double": 3.25],
                "bytes": ["bytes": "000102ff"],
                "strings": ["array": [["string": "a"], ["string": ""], ["string": "ç"]]],
                "ints": ["array": [["int": 1], ["int": -2], ["int": 300_000]]],
                "doubles": ["array": [["double": 0.5], ["double": -1.5]]],
                "bools": ["array": [["bool": true], ["bool": false]]],
                "large": ["string": large]
            ] as [String: Any],
            "dropped_attributes_count": 2,
            "events": [["time": 1_700_000_000_000_000_150, "name": "retry", "attributes": ["attempt": ["int": 2]]]],
            "links": [
                ["trace_id": traceID, "span_id": parent.context.spanID.description, "attributes": ["link.kind": ["string": "follows"]]]
            ],
            "status_code": 2, "status_message": "boom", "flags": 0x101
        ]
        let parentRecord: [String: Any] = [
            "name": "parent ✓", "kind": 2, "parent_span_id": "", "span_id": parent.context.spanID.description,
            "trace_id": traceID, "attributes": [String: Any](), "status_code": 0, "events": [Any](), "links": [Any]()
        ]
        let bodies = receiver.bodies.filter { $0.path == "/v1/traces" }
        #expect(bodies.count == 1)
        let resource: [String: Any] = [
            "service.name": ["string": "spillway-tests"], "service.version": ["string": "1.2.3"],
            "os.type": ["string": "linux"], "telemetry.sdk.name": ["string": "spillway"]
        ]
        try await check(signal: "traces", body: bodies[0].body, expected: ["resource": resource, "records": [childRecord, parentRecord]])
        // The attribute limit cut two (12 kept): "invalid.utf8" and "over.the.limit".
        // Check the invalid UTF-8 arrives repaired, with a limit that keeps it.
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    @Test func invalidUTF8IsSentAsReplacementCharacters() async throws {
        let receiver = try await OTLPReceiver.start(retention: [.bodies])
        let pipeline = try makePipeline(receiver: receiver)
        let logger = pipeline.logger(scope: "utf8")
        let bad = String(decoding: [0x66, 0xFF, 0xFE, 0x6F, 0xC3], as: UTF8.self)
        logger.emit(severity: .warn, body: bad, timestamp: 5) { $0.set("k", bad) }
        await pipeline.forceFlush()
        let body = try #require(receiver.bodies.first).body
        try await check(
            signal: "logs", body: body,
            expected: [
                "records": [
                    [
                        "time": 5, "severity_number": 13, "severity_text": "WARN",
                        "body": ["string": "f\u{FFFD}\u{FFFD}o\u{FFFD}"], "attributes": ["k": ["string": "f\u{FFFD}\u{FFFD}o\u{FFFD}"]]
                    ]
                ]
            ])
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    @Test func logRecordsWithEveryFieldDecodeWithOpentelemetryProto() async throws {
        let receiver = try await OTLPReceiver.start(retention: [.records, .bodies])
        let pipeline = try makePipeline(receiver: receiver, compression: .gzip)
        let logger = pipeline.logger(scope: "conformance.logs")
        let context = SpanContext(traceID: TraceID(hex: "0102030405060708090a0b0c0d0e0f10")!, spanID: SpanID(hex: "a1a2a3a4a5a6a7a8")!)
        logger.emit(
            severity: .error, body: "payment failed: 💳", eventName: "payment.failed", context: context, timestamp: 1_700_000_000_123_456_789
        ) {
            $0.set("user.id", 42)
            $0.set("amount", 9.99)
            $0.set("audit", true)
            $0.set("reason", "")
        }
        logger.emit(
            severity: .info2,
            body: .map([("user", .string("ann")), ("roles", .array([.string("admin"), .int(7)])), ("raw", .bytes([9, 8]))]), timestamp: 7)
        logger.emit(severity: .unspecified, body: .int(-1), timestamp: 8)
        await pipeline.forceFlush()
        #expect(receiver.logCount == 3)
        let request = try #require(receiver.bodies.first)
        #expect(request.headers.contains { $0.name.lowercased() == "content-encoding" && $0.value == "gzip" })
        try await check(
            signal: "logs", body: request.body,
            expected: [
                "records": [
                    [
                        "scope": "conformance.logs", "time": 1_700_000_000_123_456_789, "observed_time_nonzero": true,
                        "severity_number": 17, "severity_text": "ERROR", "body": ["string": "payment failed: 💳"],
                        "attributes": [
                            "user.id": ["int": 42], "amount": ["double": 9.99], "audit": ["bool": true], "reason": ["string": ""]
                        ],
                        "trace_id": "0102030405060708090a0b0c0d0e0f10", "span_id": "a1a2a3a4a5a6a7a8", "event_name": "payment.failed"
                    ],
                    [
                        "time": 7, "severity_number": 10, "severity_text": "INFO2", "trace_id": "", "span_id": "", "event_name": "",
                        "body": [
                            "map": [
                                ["user", ["string": "ann"]], ["roles", ["array": [["string": "admin"], ["int": 7]]]],
                                ["raw", ["bytes": "0908"]]
                            ]
                        ]
                    ],
                    ["time": 8, "severity_number": 0, "severity_text": "", "body": ["int": -1]]
                ]
            ])
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    /// Strings of every length from 0 to 40 bytes (names, keys, values, log bodies; one byte and two
    /// byte characters, inline and heap strings): the encoder copies up to 16 bytes with overlapping
    /// moves instead of memcpy, and a wrong offset in one length class would show here.
    @Test func stringsOfEveryShortLengthArriveWhole() async throws {
        let receiver = try await OTLPReceiver.start(retention: [.records, .bodies])
        // One request per signal, however slow the machine: only the flush below sends.
        let pipeline = try makePipeline(receiver: receiver, scheduleDelay: .seconds(60))
        let tracer = pipeline.tracer(scope: "lengths")
        let logger = pipeline.logger(scope: "lengths")
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN")
        func ascii(_ n: Int) -> String { String(alphabet[0..<n]) }
        func wide(_ n: Int) -> String { String(repeating: "é", count: n / 2) + (n % 2 == 1 ? "x" : "") }  // n bytes
        var spans: [[String: Any]] = []
        var logs: [[String: Any]] = []
        for n in 0...40 {
            let span = tracer.startSpan(ascii(n), startTime: UInt64(n + 1))
            span.setAttribute("k" + ascii(n), ascii(n))
            span.setAttribute("wide", wide(n))
            span.setAttribute("n", n)
            span.end(at: UInt64(n + 2))
            spans.append([
                "name": ascii(n), "start": n + 1, "end": n + 2, "span_id": span.context.spanID.description,
                "attributes": ["k" + ascii(n): ["string": ascii(n)], "wide": ["string": wide(n)], "n": ["int": n]] as [String: Any]
            ])
            logger.emit(severity: .info, body: wide(n), timestamp: UInt64(n + 1)) { $0.set(ascii(n) + "k", ascii(n)) }
            logs.append([
                "time": n + 1, "body": ["string": wide(n)], "attributes": [ascii(n) + "k": ["string": ascii(n)]] as [String: Any]
            ])
        }
        await pipeline.forceFlush()
        #expect(receiver.spanCount == 41 && receiver.logCount == 41)
        let traces = receiver.bodies.filter { $0.path == "/v1/traces" }.map(\.body)
        let logBodies = receiver.bodies.filter { $0.path == "/v1/logs" }.map(\.body)
        try #require(traces.count == 1 && logBodies.count == 1)
        try await check(signal: "traces", body: traces[0], expected: ["records": spans])
        try await check(signal: "logs", body: logBodies[0], expected: ["records": logs])
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    /// Records of three scopes, interleaved in one batch, arrive grouped under their scopes (the
    /// batch builder keeps one flat list of records and groups them when it builds the request).
    @Test func interleavedScopesAreGroupedInOneRequest() async throws {
        let receiver = try await OTLPReceiver.start(retention: [.records, .bodies])
        // One request, however slow the machine: only the flush below sends.
        let pipeline = try makePipeline(receiver: receiver, scheduleDelay: .seconds(60))
        let names = ["scope.a", "scope.b", "scope.c"]
        let tracers = names.map { pipeline.tracer(scope: $0) }
        var byScope: [[[String: Any]]] = [[], [], []]
        for i in 0..<30 {
            let index = i % 3 == 2 ? 2 : i % 2  // a b c b a c a b c …
            let span = tracers[index].startSpan("op \(i)", startTime: UInt64(i + 1))
            span.end(at: UInt64(i + 2))
            byScope[index].append(["scope": names[index], "name": "op \(i)", "start": i + 1, "span_id": span.context.spanID.description])
        }
        await pipeline.forceFlush()
        let bodies = receiver.bodies.filter { $0.path == "/v1/traces" }.map(\.body)
        try #require(bodies.count == 1)
        // The request lists each scope once, in the order of its first record, its records in order.
        let expected = byScope.flatMap { $0 }
        try await check(signal: "traces", body: bodies[0], expected: ["records": expected])
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }
}
