import Resilience
import ResilienceTesting
import Testing

/// Each signal's own exporter settings (`OTEL_EXPORTER_OTLP_TRACES_*`, `…_LOGS_*`) apply to that
/// signal's requests only, on top of the common ones.
@Suite struct SignalSettingsTests {
    @Test func theEnvironmentsSignalVariablesSetThatSignalOnly() throws {
        let config = try PipelineConfiguration.fromEnvironment([
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=common,x-tenant=a",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=traces,x-trace-only=1",
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-log-only=2",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "4000",
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "1500"
        ])
        #expect(config.exporter.headers == ["api-key": "common", "x-tenant": "a"])
        #expect(config.exporter.compression == .none)
        #expect(config.exporter.timeout == .milliseconds(4000))
        #expect(
            config.exporter.traces
                == .init(headers: ["x-tenant": "traces", "x-trace-only": "1"], compression: .gzip, timeout: nil))
        #expect(config.exporter.logs == .init(headers: ["x-log-only": "2"], compression: nil, timeout: .milliseconds(1500)))
        // The description names headers, never their values.
        #expect(!"\(config.exporter)".contains("common") && "\(config.exporter)".contains("x-trace-only=<redacted>"))

        // A bad value names the signal's variable.
        #expect(throws: ConfigurationError.self) {
            try PipelineConfiguration.fromEnvironment(["OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "zip"])
        }
        do {
            _ = try PipelineConfiguration.fromEnvironment(["OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "zip"])
        } catch {
            #expect(error.key == "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION" && error.allowed == "gzip, none")
        }
        var bad = PipelineConfiguration()
        bad.exporter.traces.timeout = .zero
        #expect(throws: ConfigurationError.self) { try bad.validate() }
        do { try bad.validate() } catch { #expect(error.key == "exporter.traces.timeout") }
        bad = PipelineConfiguration()
        bad.exporter.logs.headers = ["bad header": "x"]
        do { try bad.validate() } catch { #expect(error.key == "exporter.logs.headers") }
    }

    /// Spans gzip-compressed with their header, log records plain with theirs, over real HTTP;
    /// the receiver decodes both (so each body matches its Content-Encoding).
    @Test func eachSignalsRequestsCarryItsOwnHeadersAndCompression() async throws {
        let receiver = try await OTLPReceiver.start(retention: [.records, .bodies])
        var configuration = PipelineConfiguration(serviceName: "signal-settings")
        configuration.exporter.endpoint = receiver.endpoint
        configuration.exporter.headers = ["x-common": "c", "x-tenant": "common"]
        configuration.exporter.traces = .init(headers: ["x-tenant": "traces"], compression: .gzip)
        configuration.exporter.logs = .init(headers: ["x-log": "l"], compression: nil, timeout: .seconds(20))
        configuration.traces.scheduleDelay = .milliseconds(20)
        configuration.logs.scheduleDelay = .milliseconds(20)
        let pipeline = try TelemetryPipeline(configuration: configuration)
        for i in 0..<10 { pipeline.tracer(scope: "s").startSpan("span \(i)").end() }
        for i in 0..<10 { pipeline.logger(scope: "s").emit(body: "log \(i)") }
        await pipeline.forceFlush()
        #expect(receiver.spanCount == 10 && receiver.logCount == 10)

        func header(_ request: OTLPReceiver.Request, _ name: String) -> String? {
            request.headers.first { $0.name.lowercased() == name }?.value
        }
        let traces = receiver.bodies.filter { $0.path == "/v1/traces" }
        let logs = receiver.bodies.filter { $0.path == "/v1/logs" }
        #expect(!traces.isEmpty && !logs.isEmpty)
        for request in traces {
            #expect(header(request, "content-encoding") == "gzip")
            #expect(header(request, "x-tenant") == "traces" && header(request, "x-common") == "c" && header(request, "x-log") == nil)
        }
        for request in logs {
            #expect(header(request, "content-encoding") == nil)
            #expect(header(request, "x-tenant") == "common" && header(request, "x-common") == "c" && header(request, "x-log") == "l")
        }
        await shutDownCheckingBooks(pipeline)
        try await receiver.stop()
    }
}
