import Foundation
import Resilience
import ResilienceTesting
import Testing

/// Test certificates, made fresh for each test by Tests/tls/make_certs.py (CA, server, expired,
/// wrong host, client, and a second CA).
struct TestCertificates {
    let directory: String
    func path(_ name: String) -> String { directory + "/" + name }

    static func make() async throws -> TestCertificates {
        let directory = TestDirectory.make("tls")
        let (status, output) = try await runPython([repositoryRoot.path + "/Tests/tls/make_certs.py", directory])
        try #require(status == 0, "make_certs.py: \(output)")
        return TestCertificates(directory: directory)
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    /// The receiver's TLS with `stem`.pem and `stem`.key; client certificates from ca.pem required if `mutual`.
    func server(_ stem: String = "server", mutual: Bool = false) -> OTLPReceiver.TLS {
        OTLPReceiver.TLS(
            certificateChainFile: path(stem + ".pem"), privateKeyFile: path(stem + ".key"), clientCAFile: mutual ? path("ca.pem") : nil)
    }
}

private func emit(_ pipeline: TelemetryPipeline, _ range: Range<Int>) {
    let tracer = pipeline.tracer(scope: "tls")
    for i in range {
        let span = tracer.startSpan("s")
        span.setAttribute("spillway.load.seq", i)
        span.end()
    }
}

/// The books: everything emitted is exported, dropped or on disk, and nothing is in flight.
private func settled(_ pipeline: TelemetryPipeline) -> Bool {
    let s = pipeline.stats().spans
    return s.pending == 0 && s.emitted + s.recovered == s.exported + s.droppedTotal + s.onDisk && pipeline.unbalancedBooks().isEmpty
}

private func configuration(endpoint: String, spill directory: String? = nil) -> PipelineConfiguration {
    var configuration = PipelineConfiguration(serviceName: "tls-tests")
    configuration.exporter.endpoint = endpoint
    configuration.exporter.timeout = .seconds(10)
    configuration.traces.scheduleDelay = .milliseconds(50)
    configuration.overflowPolicy = .block(upTo: .seconds(10))
    configuration.retry = ExportRetryPolicy(
        initialDelay: .milliseconds(20), maximumDelay: .milliseconds(50), jitter: .none, maximumElapsedTime: .milliseconds(300))
    configuration.circuitBreaker = CircuitBreakerPolicy(failureThreshold: 3, cooldown: .seconds(1), initialCooldown: .milliseconds(300))
    if let directory { configuration.spill = SpillConfiguration(directory: directory, io: testIO) }
    return configuration
}

@Suite struct TLSTests {
    @Test(.timeLimit(.minutes(3)))
    func everySpanReachesAnHTTPSCollectorOnceWithMutualTLS() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let receiver = try await OTLPReceiver.start(retention: [], tls: certificates.server(mutual: true))
        #expect(receiver.endpoint.hasPrefix("https://"))
        var configuration = configuration(endpoint: receiver.endpoint)
        configuration.exporter.tls = ExporterTLSConfiguration(
            certificateFile: certificates.path("ca.pem"), clientCertificateFile: certificates.path("client.pem"),
            clientKeyFile: certificates.path("client.key"))
        let pipeline = try TelemetryPipeline(configuration: configuration)
        emit(pipeline, 0..<5_000)
        #expect(
            await eventually(timeout: .seconds(30)) { settled(pipeline) && pipeline.stats().spans.exported == 5_000 }, "\(pipeline.stats())"
        )
        let report = receiver.sequenceReport(expected: 5_000)
        #expect(report.missing == 0 && report.duplicates == 0, "\(report)")
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }

    /// The peer is Python's ssl module (OpenSSL): it checks Spillway's client certificate and
    /// sees the host name sent as SNI, and opentelemetry-proto decodes the spans.
    @Test(.timeLimit(.minutes(3)))
    func anIndependentTLSPeerAcceptsTheClientCertificateAndDecodesEverySpan() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let peer = try PythonPeer(script: "Tests/tls/https_receiver.py", arguments: [certificates.directory, "3000", "30"])
        var configuration = configuration(endpoint: "https://localhost:\(try peer.port())")
        configuration.exporter.tls = ExporterTLSConfiguration(
            certificateFile: certificates.path("ca.pem"), clientCertificateFile: certificates.path("client.pem"),
            clientKeyFile: certificates.path("client.key"))
        let pipeline = try TelemetryPipeline(configuration: configuration)
        emit(pipeline, 0..<3_000)
        let (status, output) = try await peer.finish(timeout: .seconds(40))
        #expect(status == 0, "\(output)")
        #expect(output.contains("\"unique\": 3000") && output.contains("\"client\": \"spillway-test-client\""), "\(output)")
        #expect(output.contains("\"sni\": \"localhost\""), "\(output)")
        await shutDownCheckingBooks(pipeline)
    }

    enum Fault: String, CaseIterable, CustomTestStringConvertible {
        case wrongCA, expired, wrongHost, missingClientCertificate, plaintextServerOnHTTPS, tlsServerOnHTTP
        var testDescription: String { rawValue }
    }

    /// Each TLS fault is a misconfiguration named in words; with a spill store every batch is
    /// kept, and after the fix every span arrives exactly once.
    @Test(.timeLimit(.minutes(3)), arguments: Fault.allCases)
    func aTLSFaultIsNamedKeptOnDiskAndDeliveredOnceFixed(_ fault: Fault) async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-tls-spill-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let serverTLS: OTLPReceiver.TLS? =
            switch fault {
            case .plaintextServerOnHTTPS: nil
            case .expired: certificates.server("expired")
            case .wrongHost: certificates.server("wronghost")
            case .missingClientCertificate: certificates.server(mutual: true)
            default: certificates.server()
            }
        let receiver = try await OTLPReceiver.start(retention: [], tls: serverTLS)
        let https = receiver.endpoint.replacingOccurrences(of: "http://", with: "https://")
        var configuration = configuration(
            endpoint: fault == .tlsServerOnHTTP ? https.replacingOccurrences(of: "https", with: "http") : https, spill: directory)
        // The CA file is a copy, so that the wrong-CA case is fixed by rotating the file in place.
        let caFile = directory + "-ca.pem"
        defer { try? FileManager.default.removeItem(atPath: caFile) }
        try FileManager.default.copyItem(atPath: certificates.path(fault == .wrongCA ? "other-ca.pem" : "ca.pem"), toPath: caFile)
        configuration.exporter.tls.certificateFile = caFile
        let events = EventLog()
        configuration.exportErrorHandler = events
        let pipeline = try TelemetryPipeline(configuration: configuration)

        emit(pipeline, 0..<1_000)
        #expect(
            await eventually(timeout: .seconds(20)) { settled(pipeline) && pipeline.stats().spans.onDisk == 1_000 }, "\(pipeline.stats())")
        let stats = pipeline.stats()
        #expect(stats.spans.droppedTotal == 0, "kept, not dropped: \(stats)")
        let expected: String =
            switch fault {
            case .wrongCA: "is not signed by a CA in the CA file \(caFile)"
            case .expired: "expired on"
            case .wrongHost: "is for collector.example, not 127.0.0.1"
            case .missingClientCertificate: "client certificate"
            case .plaintextServerOnHTTPS: "does not speak TLS"
            case .tlsServerOnHTTP: "speaks TLS and closed the plaintext request: use an https:// endpoint"
            }
        let message = stats.misconfiguration ?? ""
        #expect(message.contains(expected), "\(fault): \(message)")
        #expect(events.all.contains { $0.kind == .misconfigured }, "\(events.all.map { "\($0.kind): \($0.error)" })")
        #expect(pipeline.health().reasons.contains(.misconfigured))

        // The fix: rotate the CA file in place (same configuration), or point at a collector that fits.
        var fixed = configuration
        switch fault {
        case .wrongCA:
            try FileManager.default.removeItem(atPath: caFile)
            try FileManager.default.copyItem(atPath: certificates.path("ca.pem"), toPath: caFile)
        case .missingClientCertificate:
            fixed.exporter.tls.clientCertificateFile = certificates.path("client.pem")
            fixed.exporter.tls.clientKeyFile = certificates.path("client.key")
        default:
            receiver.behavior = .accept
        }
        let good =
            fault == .wrongCA || fault == .missingClientCertificate
            ? receiver : try await OTLPReceiver.start(retention: [], tls: certificates.server())
        if good !== receiver { fixed.exporter.endpoint = good.endpoint }
        try await pipeline.reconfigure(fixed)
        #expect(
            await eventually(timeout: .seconds(30)) { settled(pipeline) && pipeline.stats().spans.exported == 1_000 }, "\(pipeline.stats())"
        )
        let report = good.sequenceReport(expected: 1_000)
        #expect(report.missing == 0 && report.duplicates == 0, "\(report)")
        #expect(pipeline.stats().misconfiguration == nil)
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
        if good !== receiver { try await good.stop() }
    }

    @Test func unreadableOrIncompleteTLSFilesAreConfigurationErrorsNamingTheSetting() async throws {
        var configuration = PipelineConfiguration()
        configuration.exporter.endpoint = "https://127.0.0.1:4318"
        configuration.exporter.tls.certificateFile = "/nonexistent/ca.pem"
        #expect {
            _ = try TelemetryPipeline(configuration: configuration)
        } throws: { error in
            let error = error as? ConfigurationError
            return error?.key == "exporter.tls.certificateFile" && error?.value == "/nonexistent/ca.pem"
                && error?.allowed.contains("no such file") == true
        }
        configuration.exporter.tls = ExporterTLSConfiguration(clientCertificateFile: "/tmp/client.pem")
        #expect {
            try configuration.validate()
        } throws: { error in
            (error as? ConfigurationError)?.key == "exporter.tls.clientKeyFile"
        }
        // A text file is not a certificate; the signal's own setting is named as the signal's.
        let text = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-not-a-cert-\(UUID().uuidString).txt").path
        try "hello\n".write(toFile: text, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: text) }
        configuration.exporter.tls = ExporterTLSConfiguration()
        configuration.exporter.logs.tls.certificateFile = text
        #expect {
            _ = try TelemetryPipeline(configuration: configuration)
        } throws: { error in
            (error as? ConfigurationError)?.key == "exporter.logs.tls.certificateFile"
        }
    }

    @Test func theEnvironmentSetsTheTLSFilesPerSignal() throws {
        let configuration = try PipelineConfiguration.fromEnvironment([
            "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ca.pem", "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE": "/etc/logs-ca.pem",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/etc/client.pem", "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/etc/client.key",
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": "/etc/traces.key"
        ])
        #expect(configuration.exporter.tls.certificateFile == "/etc/ca.pem")
        #expect(configuration.exporter.logs.tls.certificateFile == "/etc/logs-ca.pem")
        #expect(configuration.exporter.traces.tls.clientKeyFile == "/etc/traces.key")
        #expect(configuration.exporter.tls.clientCertificateFile == "/etc/client.pem")
        #expect {
            _ = try PipelineConfiguration.resolve(layers: [
                ConfigurationLayer(environment: ["OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": "/etc/client.pem"])
            ])
        } throws: { error in
            (error as? ConfigurationError)?.key == "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"
        }
    }
}
