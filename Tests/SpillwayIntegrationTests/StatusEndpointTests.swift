import CoreMetrics
import Foundation
import Resilience
import ResilienceTesting
import SpillwayIntegration
import Testing

#if canImport(Glibc)
    import Glibc
#endif

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
        #expect(scrape.status == 200 && scrape.headers.contains("text/plain; version=0.0.4"))
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
            port, "PUT", "/config", headers: bearer, body: "{\"OTEL_BSP_SCHEDULE_DELAY\": 250, \"OTEL_EXPORTER_OTLP_COMPRESSION\": \"gzip\"}")
        #expect(applied.status == 200, "\(applied)")
        #expect(pipeline.configuration.traces.scheduleDelay == .milliseconds(250))
        #expect(pipeline.configuration.exporter.compression == .gzip)
        #expect(pipeline.configuration.exporter.headers["x-api-key"] == Self.secret, "what the body did not name stays")

        let wrongMethod = try await http(port, "POST", "/health")
        #expect(wrongMethod.status == 405 && wrongMethod.headers.contains("Allow: GET"))
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
        let config0 = try await http(port, "GET", "/config")
        #expect(scrape.status == 200 && scrape.body.contains("spillway_circuit_breaker_state 2"))
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

    // MARK: A small HTTP/1.1 client over a socket, so that no test depends on curl.

    struct Response: CustomStringConvertible {
        var status: Int
        var headers: String
        var body: String
        var description: String { "\(status) \(body)" }
    }

    func http(_ port: Int, _ method: String, _ path: String, headers: [String: String] = [:], body: String = "") async throws -> Response {
        try await blockingCall { try Self.request(port, method, path, headers, body) }
    }

    static func request(_ port: Int, _ method: String, _ path: String, _ headers: [String: String], _ body: String) throws -> Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure(description: "socket: \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestFailure(description: "connect: \(errno)") }
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n" + body
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            // The server may answer 413 and close before the whole body is sent.
            if n <= 0 { break }
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        let response = String(decoding: received, as: UTF8.self)
        guard let split = response.range(of: "\r\n\r\n") else { throw TestFailure(description: "no answer: \(response)") }
        let head = String(response[..<split.lowerBound])
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        return Response(status: status, headers: head, body: String(response[split.upperBound...]))
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
