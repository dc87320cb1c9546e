import Benchmark
import Foundation
import OTel
import Resilience
import ResilienceTesting
import Tracing

/// A transport of the end-to-end rows: protocol, TLS, compression.
struct BenchTransport: Sendable {
    var name: String
    var `protocol`: OTLPProtocol
    var tls: Bool
    var compression: OTLPExporterConfiguration.Compression

    /// OTLP/HTTP plaintext, gzip and TLS; OTLP/gRPC plaintext and TLS (the issue's rows, in order).
    static let all = [
        BenchTransport(name: "OTLP/HTTP", protocol: .httpProtobuf, tls: false, compression: .none),
        BenchTransport(name: "OTLP/HTTP gzip", protocol: .httpProtobuf, tls: false, compression: .gzip),
        BenchTransport(name: "OTLP/HTTP TLS", protocol: .httpProtobuf, tls: true, compression: .none),
        BenchTransport(name: "OTLP/gRPC", protocol: .grpc, tls: false, compression: .none),
        BenchTransport(name: "OTLP/gRPC TLS", protocol: .grpc, tls: true, compression: .none)
    ]

    /// The embedded receiver speaking this transport (TLS with the bench's test certificates).
    func startReceiver() async throws -> OTLPReceiver {
        var serverTLS: OTLPReceiver.TLS?
        if tls {
            let certificates = try benchCertificates.get()
            serverTLS = OTLPReceiver.TLS(certificateChainFile: certificates + "/server.pem", privateKeyFile: certificates + "/server.key")
        }
        return try await OTLPReceiver.start(retention: [], countIDs: false, tls: serverTLS, protocol: `protocol`)
    }

    /// The receiver's address as a client names it: the certificates are for `localhost`.
    func endpoint(_ receiver: OTLPReceiver) -> String { tls ? "https://localhost:\(receiver.port)" : "http://127.0.0.1:\(receiver.port)" }
}

struct CertificateError: Error, CustomStringConvertible {
    var description: String
}

/// The TLS rows' certificates (CA, server for localhost and 127.0.0.1), made once per run by
/// Tests/tls/make_certs.py with the virtual environment of `make deps`.
let benchCertificates: Result<String, any Error> = Result {
    var root = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { root = root.deletingLastPathComponent() }  // Benchmarks/Benchmarks/SpillwayBenchmarks/this file
    let directory = NSTemporaryDirectory() + "spillway-bench-certificates-\(getpid())"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let process = Process()
    process.executableURL = root.appendingPathComponent(".build/venv/bin/python3")
    process.arguments = [root.appendingPathComponent("Tests/tls/make_certs.py").path, directory]
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw CertificateError(description: "Tests/tls/make_certs.py failed (\(process.terminationStatus)): run `make deps` first")
    }
    return directory
}

/// Spillway's pipeline, `spansPerEndToEndRun` spans of 5 attributes to the loopback receiver over
/// `transport`, at most 4 requests under way; measured until `forceFlush` returns.
func spillwayEndToEnd(_ benchmark: Benchmark, over transport: BenchTransport) async throws {
    let receiver = try await transport.startReceiver()
    var configuration = PipelineConfiguration(serviceName: "bench")
    configuration.exporter.protocol = transport.protocol
    configuration.exporter.endpoint = transport.endpoint(receiver)
    configuration.exporter.compression = transport.compression
    if transport.tls { configuration.exporter.tls.certificateFile = try benchCertificates.get() + "/ca.pem" }
    configuration.overflowPolicy = .block(upTo: .seconds(30))
    configuration.traces.maxConcurrentExports = 4
    let pipeline = try TelemetryPipeline(configuration: configuration)
    let tracer = pipeline.tracer(scope: "bench")
    let start = ContinuousClock.now
    benchmark.startMeasurement()
    for i in 0..<spansPerEndToEndRun {
        let span = tracer.startSpan("GET /api/cart", kind: .server)
        span.setAttribute("spillway.load.seq", i)
        span.setAttribute("http.request.method", "GET")
        span.setAttribute("http.route", "/api/cart")
        span.setAttribute("http.response.status_code", 200)
        span.setAttribute("cache.hit", true)
        span.end()
    }
    try await flush(pipeline, timeout: .seconds(600))
    benchmark.stopMeasurement()
    let elapsed = ContinuousClock.now - start
    let report = receiver.sequenceReport(expected: spansPerEndToEndRun)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    writeReport(
        "spillway end to end over \(transport.name): \(spansPerEndToEndRun) spans in \(String(format: "%.2f", seconds)) s = "
            + "\(Int(Double(spansPerEndToEndRun) / seconds)) spans/s; receiver: \(report); dropped \(pipeline.stats().spans.dropped)"
    )
    _ = await pipeline.shutdown(deadline: .now + .seconds(10))
    try await receiver.stop()
}

/// swift-otel 1.6.0's tracing backend, the same spans to the same receiver over `transport`
/// (plaintext): emitted from a plain thread, measured until the receiver stops growing.
func swiftOTelEndToEnd(_ benchmark: Benchmark, over transport: BenchTransport) async throws {
    let receiver = try await transport.startReceiver()
    var config = OTel.Configuration.default
    config.traces.sampler = .alwaysOn
    if transport.protocol == .grpc {
        config.traces.otlpExporter.endpoint = receiver.endpoint
        config.traces.otlpExporter.protocol = .grpc
    } else {
        config.traces.otlpExporter.endpoint = receiver.endpoint + "/v1/traces"
        config.traces.otlpExporter.protocol = .httpProtobuf
    }
    config.metrics.enabled = false
    config.logs.enabled = false
    let (tracer, service) = try OTel.makeTracingBackend(configuration: config)
    let running = runOTel(service)
    let start = ContinuousClock.now
    benchmark.startMeasurement()
    // Emit from a plain thread: swift-otel's processor runs on the cooperative pool, and an
    // emit loop that never suspends on one of this machine's two cooperative threads (the
    // benchmark harness blocks the other) would starve it completely.
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        Thread {
            for i in 0..<spansPerEndToEndRun {
                tracer.withSpan("GET /api/cart", ofKind: .server) { span in
                    span.attributes["spillway.load.seq"] = i
                    span.attributes["http.request.method"] = "GET"
                    span.attributes["http.route"] = "/api/cart"
                    span.attributes["http.response.status_code"] = 200
                    span.attributes["cache.hit"] = true
                }
            }
            done.resume()
        }.start()
    }
    // Wait until the receiver stops growing for longer than swift-otel's 5 s schedule delay
    // (it has no flush in its public API); the quiet window is not counted.
    var last = -1
    var lastChange = ContinuousClock.now
    while ContinuousClock.now - lastChange < .seconds(6) {
        if ContinuousClock.now - start > .seconds(900) {
            throw BenchmarkDeadlineExceeded(what: "swift-otel delivery still growing: \(receiver.spanCount) spans", timeout: .seconds(900))
        }
        if receiver.spanCount != last {
            last = receiver.spanCount
            lastChange = ContinuousClock.now
        }
        try await Task.sleep(for: .milliseconds(200))
    }
    benchmark.stopMeasurement()
    let elapsed = lastChange - start
    running.cancel()
    let report = receiver.sequenceReport(expected: spansPerEndToEndRun)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    writeReport(
        "swift-otel end to end over \(transport.name): \(spansPerEndToEndRun) spans in \(String(format: "%.2f", seconds)) s = "
            + "\(Int(Double(report.received) / seconds)) delivered spans/s; receiver: \(report); requests \(receiver.requestCount), "
            + "last path \(receiver.diagnostics.lastPath), answers \(receiver.diagnostics.statuses)"
    )
    try await receiver.stop()
}
