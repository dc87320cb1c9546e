import CoreMetrics
import Foundation
import Resilience
import ResilienceTesting
import SpillwayIntegration
import Testing

/// The status endpoint over real HTTP on 127.0.0.1: every route, the errors, the secrets, and a
/// scrape that Python's `prometheus_client` parses.
@Suite struct StatusEndpointTests {
    static let token = "status-token-0123456789"
    static let secret = "header-secret-value-XYZ"

    func pipeline(_ receiver: OTLPReceiver, token: String? = StatusEndpointTests.token, spill: Bool = false) throws -> TelemetryPipeline {
        var configuration = testConfiguration(receiver)
        configuration.metrics.exportInterval = .seconds(3600)
        configuration.exporter.headers = ["x-api-key": Self.secret]
        configuration.statusEndpoint = PipelineConfiguration.StatusEndpoint(port: 0, configurationToken: token)
        configuration.circuitBreaker = CircuitBreakerPolicy(failureThreshold: 1, cooldown: .seconds(30), initialCooldown: .seconds(30))
        if spill { configuration.spill = SpillConfiguration(directory: temporaryDirectory()) }
        return try TelemetryPipeline(configuration: configuration)
    }

    @Test func everyRouteAnswersAndTheScrapeParsesWithPrometheusClient() async throws {
        let receiver = try await OTLPReceiver.start()
        let pipeline = try pipeline(receiver)
        let port = try #require(pipeline.statusEndpointPort)
        let tracer = pipeline.tracer(scope: "status")
        for _ in 0..<5 { tracer.startSpan("GET /").end() }
        let factory = SpillwayMetricsFactory(pipeline: pipeline)
        Counter(label: "http.requests", dimensions: [("route", "/cart")], factory: factory).increment(by: 3)
        Timer(label: "http.duration", factory: factory).recordNanoseconds(20_000_000)
        Meter(label: "queue.depth", factory: factory).set(4)
        await pipeline.forceFlush()

        let health = try await http(port, "GET", "/health")
        #expect(health.status == 200 && health.body.contains("\"status\":\"healthy\""), "\(health)")

        let stats = try await http(port, "GET", "/stats")
        #expect(stats.status == 200)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(stats.body.utf8)) as? [String: Any])
        #expect((json["spans"] as? [String: Any])?["exported"] as? Int == 5)
        #expect((json["metrics"] as? [String: Any])?["exported"] as? Int == 3)
        #expect(json["metric_series"] as? Int == 3)

        let scrape = try await http(port, "GET", "/metrics")
        #expect(scrape.status == 200 && scrape.head.contains("text/plain; version=0.0.4"))
        let samples = try await parsePrometheus(scrape.body)
        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples.first { sample in sample.name == name && labels.allSatisfy { key, value in sample.labels[key] == value } }?.value
        }
        #expect(value("spillway_records_emitted_total", ["signal": "traces"]) == 5)
        #expect(value("spillway_records_exported_total", ["signal": "metrics"]) == 3)
        #expect(value("spillway_health") == 0)
        #expect(value("http_requests_total", ["route": "/cart"]) == 3)
        #expect(value("http_duration_bucket", ["le": "0.025"]) == 1 && value("http_duration_bucket", ["le": "0.01"]) == 0)
        #expect(value("http_duration_count") == 1 && value("http_duration_sum") == 0.02)
        #expect(value("queue_depth") == 4)

        let config = try await http(port, "GET", "/config")
        #expect(config.status == 200 && config.body.contains("\"OTEL_EXPORTER_OTLP_ENDPOINT\":\"\(receiver.endpoint)\""))
        #expect(config.body.contains("x-api-key"), "the header's name is shown")
        #expect(config.body.contains("\"OTEL_SDK_DISABLED\":\"false\""))
        for answer in [health, stats, scrape, config] {
            #expect(!answer.body.contains(Self.secret) && !answer.body.contains(Self.token), "a secret in \(answer.body)")
        }
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test func putConfigAppliesLiveKeysWithTheTokenAndRefusesEverythingElse() async throws {
        let receiver = try await OTLPReceiver.start()
        let pipeline = try pipeline(receiver)
        let port = try #require(pipeline.statusEndpointPort)
        let bearer = ["Authorization": "Bearer \(Self.token)"]

        #expect(try await http(port, "PUT", "/config", body: "{}").status == 401)
        #expect(try await http(port, "PUT", "/config", headers: ["Authorization": "Bearer wrong"], body: "{}").status == 401)
        let badJSON = try await http(port, "PUT", "/config", headers: bearer, body: "{\"OTEL_BSP_SCHEDULE_DELAY\": ")
        #expect(badJSON.status == 400 && badJSON.body.contains("not a JSON object"), "\(badJSON)")
        let unknown = try await http(port, "PUT", "/config", headers: bearer, body: "{\"OTEL_NOPE\": \"1\"}")
        #expect(unknown.status == 400 && unknown.body.contains("OTEL_NOPE"), "\(unknown)")
        let restart = try await http(port, "PUT", "/config", headers: bearer, body: "{\"SPILLWAY_RING_CAPACITY\": \"1048576\"}")
        #expect(restart.status == 400 && restart.body.contains("SPILLWAY_RING_CAPACITY") && restart.body.contains("restart"), "\(restart)")
        let invalid = try await http(port, "PUT", "/config", headers: bearer, body: "{\"OTEL_BSP_SCHEDULE_DELAY\": \"soon\"}")
        #expect(invalid.status == 400 && invalid.body.contains("OTEL_BSP_SCHEDULE_DELAY"), "\(invalid)")
        let huge = "{\"OTEL_SERVICE_NAME\": \"" + String(repeating: "x", count: 70_000) + "\"}"
        #expect(try await http(port, "PUT", "/config", headers: bearer, body: huge).status == 413)
        #expect(pipeline.configuration.traces.scheduleDelay == .milliseconds(30), "nothing refused was applied")

        let applied = try await http(
            port, "PUT", "/config", headers: bearer,
            body: "{\"OTEL_BSP_SCHEDULE_DELAY\": 250, \"OTEL_EXPORTER_OTLP_COMPRESSION\": \"gzip\"}")
        #expect(applied.status == 200, "\(applied)")
        #expect(pipeline.configuration.traces.scheduleDelay == .milliseconds(250))
        #expect(pipeline.configuration.exporter.compression == .gzip)
        #expect(pipeline.configuration.exporter.headers["x-api-key"] == Self.secret, "what the body did not name stays")

        let wrongMethod = try await http(port, "POST", "/health")
        #expect(wrongMethod.status == 405 && wrongMethod.head.contains("Allow: GET"))
        #expect(try await http(port, "GET", "/nowhere").status == 404)
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()

        // Without a token, PUT /config is off.
        let other = try await OTLPReceiver.start()
        let closed = try self.pipeline(other, token: nil)
        let refused = try await http(try #require(closed.statusEndpointPort), "PUT", "/config", headers: bearer, body: "{}")
        #expect(refused.status == 403, "\(refused)")
        _ = await closed.shutdown(deadline: .now + .seconds(5))
        try await other.stop()
    }

    @Test func aScrapeDuringAnOutageAnswers503OnHealth() async throws {
        let receiver = try await OTLPReceiver.start()
        receiver.behavior = .fail(status: 503)
        let pipeline = try pipeline(receiver)
        let port = try #require(pipeline.statusEndpointPort)
        pipeline.tracer(scope: "outage").startSpan("lost?").end()
        #expect(await eventually { pipeline.stats().circuitBreakerState == .open })
        let health = try await http(port, "GET", "/health")
        #expect(health.status == 503 && health.body.contains("collector_down"), "\(health)")
        let scrape = try await http(port, "GET", "/metrics")
        let config = try await http(port, "GET", "/config")
        #expect(scrape.status == 200 && scrape.body.contains("spillway_circuit_breaker_state 2"))
        #expect(config.status == 200, "the other routes answer during the outage too")
        receiver.behavior = .accept
        _ = await pipeline.shutdown(deadline: .now + .milliseconds(500))
        try await receiver.stop()
    }

    @Test func anAddressThatCannotBeUsedIsAConfigurationErrorNamingTheKey() async throws {
        #expect(throws: ConfigurationError.self) { try PipelineConfiguration.StatusEndpoint(parsing: "localhost:http") }
        do {
            _ = try PipelineConfiguration.fromEnvironment(["SPILLWAY_STATUS_ADDRESS": "127.0.0.1:99999"])
            Issue.record("an out-of-range port was accepted")
        } catch {
            #expect(error.key == "SPILLWAY_STATUS_ADDRESS" && error.allowed.contains("host:port"))
        }
        #expect(try PipelineConfiguration.fromEnvironment(["SPILLWAY_STATUS_ADDRESS": ":0"]).statusEndpoint?.host == "127.0.0.1")
        // A port already taken: the pipeline does not start, and says why.
        let receiver = try await OTLPReceiver.start()
        let first = try pipeline(receiver)
        var configuration = testConfiguration(receiver)
        configuration.statusEndpoint = PipelineConfiguration.StatusEndpoint(port: try #require(first.statusEndpointPort))
        do {
            _ = try TelemetryPipeline(configuration: configuration)
            Issue.record("a second pipeline bound the same port")
        } catch {
            #expect(error.key == "SPILLWAY_STATUS_ADDRESS", "\(error)")
        }
        _ = await first.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    /// Shutdown releases the port before it returns: it can be listened on again at once, as the next pipeline would.
    ///
    /// (A second pipeline on the same port, started after the first shut down, failed once with
    /// "Address already in use" while the replay tests ran beside it: their client connections take
    /// ephemeral ports from the same range, and one took the released port in between. Listening on it
    /// right after the shutdown leaves no such window and makes the same claim.)
    @Test func aShutDownPipelineReleasesItsPortForTheNextOne() async throws {
        let receiver = try await OTLPReceiver.start()
        for round in 0..<2 {
            var configuration = testConfiguration(receiver)
            configuration.statusEndpoint = PipelineConfiguration.StatusEndpoint(port: 0)
            let pipeline = try TelemetryPipeline(configuration: configuration)
            let port = try #require(pipeline.statusEndpointPort)
            #expect(try await http(port, "GET", "/health").status == 200, "round \(round)")
            #expect(listenErrno(port) == EADDRINUSE, "round \(round): the pipeline holds its port")
            _ = await pipeline.shutdown(deadline: .now + .seconds(5))
            // At once: shutdown returns after the listener closed (it used to close on its loop just after).
            #expect(listenErrno(port) == 0, "round \(round): the port is free when shutdown returns")
        }
        try await receiver.stop()
    }

    /// Listens on 127.0.0.1:`port` (with `SO_REUSEADDR`, as the status server does) and closes at once:
    /// 0, or the errno of the bind or listen.
    private func listenErrno(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 1) == 0 else { return errno }
        return 0
    }

    typealias Response = HTTPClient.Response

    func http(_ port: Int, _ method: String, _ path: String, headers: [String: String] = [:], body: String = "") async throws -> Response {
        try await blockingCall { try HTTPClient.request(port: port, method: method, path: path, headers: headers, body: body) }
    }

    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// The samples of `text`, as `prometheus_client`'s parser reads them.
    func parsePrometheus(_ text: String) async throws -> [Sample] {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try text.write(toFile: dir + "/scrape.txt", atomically: true, encoding: .utf8)
        let script = repositoryRoot.appendingPathComponent("Tests/conformance/check_prometheus.py").path
        let result = try await blockingCall { try IntegrationConformanceTests.runBlocking([testPython, script, dir + "/scrape.txt"]) }
        #expect(result.status == 0, "\(result.text)")
        return result.text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return Sample(
                name: object["name"] as? String ?? "", labels: object["labels"] as? [String: String] ?? [:],
                value: object["value"] as? Double ?? .nan)
        }
    }
}
