import Benchmark
import Foundation
import OTel
import Resilience
import ResilienceTesting
import Tracing

/// One way to reach the collector, for the end-to-end rows by transport.
struct BenchTransport: Sendable {
    var name: String
    var protocolKind: OTLPProtocol
    var tls: Bool
    var compression: OTLPExporterConfiguration.Compression

    static let all = [
        BenchTransport(name: "OTLP/HTTP", protocolKind: .httpProtobuf, tls: false, compression: .none),
        BenchTransport(name: "OTLP/HTTP + gzip", protocolKind: .httpProtobuf, tls: false, compression: .gzip),
        BenchTransport(name: "OTLP/HTTP + TLS", protocolKind: .httpProtobuf, tls: true, compression: .none),
        BenchTransport(name: "OTLP/gRPC", protocolKind: .grpc, tls: false, compression: .none),
        BenchTransport(name: "OTLP/gRPC + TLS", protocolKind: .grpc, tls: true, compression: .none)
    ]
}

/// Test certificates (a CA, and a server certificate for 127.0.0.1 and localhost), written by the
/// repository's `Tests/tls/make_certs.py` with the test virtual environment that `make bench`
/// installs (`make deps`).
struct BenchCertificates {
    let directory: String

    static func make() throws -> BenchCertificates {
        let directory = NSTemporaryDirectory() + "spillway-bench-tls-\(UInt32.random(in: 0...UInt32.max))"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "../.build/venv/bin/python3")
        process.arguments = ["../Tests/tls/make_certs.py", directory]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchmarkDeadlineExceeded(what: "make_certs.py exited \(process.terminationStatus)", timeout: .zero)
        }
        return BenchCertificates(directory: directory)
    }

    func path(_ name: String) -> String { directory + "/" + name }
    var server: OTLPReceiver.TLS { OTLPReceiver.TLS(certificateChainFile: path("server.pem"), privateKeyFile: path("server.key")) }
    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// Spillway end to end over `transport`: emits `spans` spans with blocking overflow, flushes, and
/// counts every span by id at the receiver (on event loops of its own: a collector does not run
/// on the sender's). The report line gives throughput and loss.
func spillwayEndToEnd(_ benchmark: Benchmark, over transport: BenchTransport, spans: Int) async throws {
    let certificates = transport.tls ? try BenchCertificates.make() : nil
    defer { certificates?.remove() }
    let receiver = try await OTLPReceiver.start(
        retention: [], countIDs: false, tls: certificates?.server, protocol: transport.protocolKind, ownEventLoops: 2)
    var configuration = PipelineConfiguration(serviceName: "bench")
    configuration.exporter.protocol = transport.protocolKind
    configuration.exporter.compression = transport.compression
    configuration.exporter.endpoint = transport.tls ? "https://localhost:\(receiver.port)" : receiver.endpoint
    if let certificates { configuration.exporter.tls = ExporterTLSConfiguration(certificateFile: certificates.path("ca.pem")) }
    configuration.overflowPolicy = .block(upTo: .seconds(30))
    // The export window as shipped (adaptive, up to 128 requests in flight), as `spillway load`
    // between processes: a window fixed at 4 measured each transport's per-request latency
    // more than its throughput.
    let pipeline = try TelemetryPipeline(configuration: configuration)
    let seconds = try await sendNumberedSpans(pipeline, spans, benchmark)
    let report = receiver.sequenceReport(expected: spans)
    writeReport(
        "spillway \(transport.name): \(spans) spans in \(String(format: "%.2f", seconds)) s = "
            + "\(Int(Double(spans) / seconds)) spans/s; receiver: \(report); dropped \(pipeline.stats().spans.droppedTotal)")
    _ = await pipeline.shutdown(deadline: .now + .seconds(10))
    try await receiver.stop()
}

/// swift-otel 1.6.0 end to end to the embedded receiver speaking `protocolKind` (plaintext):
/// measured until the receiver stops growing for longer than swift-otel's 5 s schedule delay (it
/// has no flush in its public API; the quiet window is not counted).
func swiftOTelEndToEnd(_ benchmark: Benchmark, over protocolKind: OTLPProtocol, spans: Int) async throws {
    let receiver = try await OTLPReceiver.start(retention: [], countIDs: false, protocol: protocolKind, ownEventLoops: 2)
    var config = OTel.Configuration.default
    config.traces.sampler = .alwaysOn
    if protocolKind == .grpc {
        config.traces.otlpExporter.protocol = .grpc
        config.traces.otlpExporter.endpoint = "http://127.0.0.1:\(receiver.port)"
    } else {
        config.traces.otlpExporter.protocol = .httpProtobuf
        config.traces.otlpExporter.endpoint = receiver.endpoint + "/v1/traces"
    }
    config.metrics.enabled = false
    config.logs.enabled = false
    let (tracer, service) = try OTel.makeTracingBackend(configuration: config)
    let running = runOTel(service)
    let start = ContinuousClock.now
    benchmark.startMeasurement()
    // Emit from a plain thread: swift-otel's processor runs on the cooperative pool, and an emit
    // loop that never suspends on one of this machine's two cooperative threads (the benchmark
    // harness blocks the other) would starve it completely.
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        Thread {
            for i in 0..<spans {
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
    var last = -1
    var lastChange = ContinuousClock.now
    while ContinuousClock.now - lastChange < .seconds(6) {
        if ContinuousClock.now - start > .seconds(900) {
            throw BenchmarkDeadlineExceeded(
                what: "swift-otel delivery still growing: \(receiver.spanCount) spans", timeout: .seconds(900))
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
    let report = receiver.sequenceReport(expected: spans)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    writeReport(
        "swift-otel \(protocolKind == .grpc ? "OTLP/gRPC" : "OTLP/HTTP"): \(spans) spans in \(String(format: "%.2f", seconds)) s = "
            + "\(Int(Double(report.received) / seconds)) delivered spans/s; receiver: \(report); requests \(receiver.requestCount), "
            + "last path \(receiver.diagnostics.lastPath), answers \(receiver.diagnostics.statuses)")
    try await receiver.stop()
}

/// The rows by transport (issue 13): Spillway over each, then swift-otel's gRPC exporter.
func transportBenchmarks(_ e2e: Benchmark.Configuration, spans: Int) {
    for transport in BenchTransport.all {
        Benchmark("spillway: end to end over \(transport.name), \(spans) spans", configuration: e2e) { benchmark in
            try await spillwayEndToEnd(benchmark, over: transport, spans: spans)
        }
    }
    Benchmark("swift-otel 1.6.0: end to end over OTLP/gRPC, \(spans) spans", configuration: e2e) { benchmark in
        try await swiftOTelEndToEnd(benchmark, over: .grpc, spans: spans)
    }
}
