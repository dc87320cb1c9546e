import Foundation
import Resilience
import ResilienceTesting
import SpillwayIntegration
import Synchronization
import Testing

private func emitAudit(_ pipeline: TelemetryPipeline, _ range: Range<Int>) {
    let logger = pipeline.logger(scope: "audit.trail")
    for i in range { logger.emit(body: "user changed a setting") { $0.set("spillway.load.seq", i) } }
}

private func yaml(main: String, compliance: String) -> String {
    """
    otel:
      exporter.otlp.endpoint: \(main)
      blrp.schedule.delay: 20
    spillway:
      overflow: block:30000
      destinations:
        compliance:
          endpoint: \(compliance)
          headers: x-tenant=audit
          timeout: 5000
      routes:
        audit:
          scopes: [audit.*]
          destinations: [compliance, default]
    """
}

@Suite("destinations and routes in a configuration file")
struct FileRoutesTests {
    /// The issue's fan-out, configured from a YAML file: every audit record reaches the
    /// compliance collector and the main one, once each; a reload moves the compliance
    /// destination to another collector under load, and each record reaches exactly one of them.
    @Test(.timeLimit(.minutes(3)))
    func aFileFansAnAuditRouteOutAndAReloadMovesItsDestination() async throws {
        let main = try await OTLPReceiver.start(retention: [.bodies])
        let before = try await OTLPReceiver.start(retention: [.bodies])
        let after = try await OTLPReceiver.start(retention: [])
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/telemetry.yaml"
        func write(_ text: String) throws {
            try text.write(toFile: file + ".tmp", atomically: false, encoding: .utf8)
            _ = rename(file + ".tmp", file)
        }
        try write(yaml(main: main.endpoint, compliance: before.endpoint))
        let outcomes = Mutex<[TelemetryConfigurationSource.ReloadOutcome]>([])
        let source = try await TelemetryConfigurationSource(environment: [:], file: file, reloading: true, pollInterval: .milliseconds(50))
        {
            $0.serviceName = "file-routes"
            $0.selfMetrics = false
        }
        source.onReload { outcome in outcomes.withLock { $0.append(outcome) } }
        let configuration = try source.configuration()
        #expect(configuration.destinations.map(\.name) == ["compliance"])
        #expect(configuration.destinations.first?.exporter.timeout == .seconds(5))
        #expect(configuration.routes.map(\.name) == ["audit"] && configuration.routes.first?.scopes == ["audit.*"])
        let pipeline = try TelemetryPipeline(configuration: configuration)
        source.attach(pipeline)
        let watcher = Task { try await source.run() }

        emitAudit(pipeline, 0..<2_000)
        #expect(await eventually(timeout: .seconds(30)) { before.logCount >= 2_000 }, "\(pipeline.stats())")
        let header = before.bodies.first?.headers.first { $0.name.lowercased() == "x-tenant" }?.value
        #expect(header == "audit", "the destination's headers come from its entry")
        #expect(main.bodies.allSatisfy { request in !request.headers.contains { $0.name.lowercased() == "x-tenant" } })

        try write(yaml(main: main.endpoint, compliance: after.endpoint))
        #expect(await eventually(timeout: .seconds(30)) { !outcomes.withLock { $0 }.isEmpty }, "the reload was not seen")
        if case .failure(let error) = outcomes.withLock({ $0 })[0] { Issue.record("the reload was refused: \(error)") }
        emitAudit(pipeline, 2_000..<4_000)
        #expect(
            await eventually(timeout: .seconds(30)) { before.logCount + after.logCount >= 4_000 && main.logCount >= 4_000 },
            "\(before.logCount) + \(after.logCount), main \(main.logCount); \(pipeline.stats())")
        var seen = [Int](repeating: 0, count: 4_000)
        for receiver in [before, after] {
            for (seq, count) in receiver.sequenceCounts(signal: .logs).enumerated() where seq < 4_000 { seen[seq] += count }
        }
        #expect(seen.allSatisfy { $0 == 1 }, "\(seen.filter { $0 == 0 }.count) missing, \(seen.filter { $0 > 1 }.count) twice")
        #expect(
            after.sequenceReport(expected: 4_000, signal: .logs).received == 2_000, "the records after the reload went to the new endpoint")
        let atMain = main.sequenceReport(expected: 4_000, signal: .logs)
        #expect(atMain.missing == 0 && atMain.duplicates == 0, "main: \(atMain)")
        watcher.cancel()
        _ = try? await watcher.value
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        for receiver in [main, before, after] { try await receiver.stop() }
    }

    /// Each mistake names its key in the file and what is allowed; JSON spells the same lists.
    @Test func mistakesNameTheirKeyAndJSONSpellsTheSameLists() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func error(_ text: String, _ name: String = "telemetry.yaml") async -> ConfigurationError? {
            let path = directory + "/" + name
            try? text.write(toFile: path, atomically: true, encoding: .utf8)
            do {
                _ = try await TelemetryConfigurationSource(environment: [:], file: path).configuration()
                return nil
            } catch {
                return error
            }
        }
        let typo = await error("spillway:\n  destinations:\n    vault:\n      endpiont: http://127.0.0.1:4318\n")
        #expect(
            typo?.key == "spillway.destinations.vault.endpiont" && typo?.allowed.contains("did you mean endpoint") == true,
            "\(String(describing: typo))")
        let badValue = await error("spillway:\n  destinations:\n    vault:\n      compression: brotli\n")
        #expect(
            badValue?.key == "spillway.destinations.vault.compression" && badValue?.allowed.contains("gzip") == true,
            "\(String(describing: badValue))")
        let flat = await error("spillway:\n  destinations:\n    vault: http://127.0.0.1:4318\n")
        #expect(flat?.key == "spillway.destinations.vault" && flat?.allowed == "a map of settings", "\(String(describing: flat))")
        let routeKey = await error("spillway:\n  routes:\n    audit:\n      scope: audit.*\n")
        #expect(
            routeKey?.key == "spillway.routes.audit.scope" && routeKey?.allowed.contains("scopes") == true,
            "\(String(describing: routeKey))")
        let overflow = await error("spillway:\n  routes:\n    audit:\n      overflow: wait\n")
        #expect(overflow?.key == "spillway.routes.audit.overflow", "\(String(describing: overflow))")
        // The pipeline's own checks, named by the file's keys: a destination the file does not
        // define, a route without patterns, a retry policy whose delays contradict each other.
        let unknown = await error("spillway:\n  routes:\n    audit:\n      scopes: audit.*\n      destinations: vault\n")
        #expect(
            unknown?.key == "spillway.routes.audit.destinations" && unknown?.value.contains("vault") == true
                && unknown?.source.contains("telemetry.yaml") == true, "\(String(describing: unknown))")
        let empty = await error("spillway:\n  routes:\n    a:\n      order: 1\n    b:\n      scopes: b.*\n")
        #expect(empty?.key == "spillway.routes.a" && empty?.allowed.contains("pattern") == true, "\(String(describing: empty))")
        let delays = await error("spillway:\n  destinations:\n    vault:\n      retry:\n        initial_delay: 9000\n")
        #expect(
            delays?.key == "spillway.destinations.vault.retry.max_delay" && delays?.allowed.contains("initialDelay") == true,
            "\(String(describing: delays))")
        let retryKey = await error("spillway:\n  destinations:\n    vault:\n      retry:\n        attempts: 3\n")
        #expect(
            retryKey?.key == "spillway.destinations.vault.retry.attempts" && retryKey?.allowed.contains("max_attempts") == true,
            "\(String(describing: retryKey))")
        let threshold = await error("spillway:\n  destinations:\n    vault:\n      breaker:\n        failure_threshold: 0\n")
        #expect(threshold?.key == "spillway.destinations.vault.breaker.failure_threshold", "\(String(describing: threshold))")
        let jitter = await error("spillway:\n  destinations:\n    vault:\n      retry: {jitter: lots}\n")
        #expect(jitter?.key == "spillway.destinations.vault.retry.jitter", "\(String(describing: jitter))")

        let json = #"""
            {"spillway": {"destinations": {"vault": {"endpoint": "http://127.0.0.1:4399", "insecure": true, "timeout": 1,
              "pool": {"endpoints": ["http://127.0.0.1:4401", "http://127.0.0.1:4402"], "mode": "balance-by-trace"},
              "retry": {"initial_delay": 200, "max_delay": 2000, "multiplier": 2, "jitter": "full", "max_attempts": 4,
                        "max_elapsed_time": "unlimited"},
              "breaker": {"failure_threshold": 3, "cooldown": 60000, "initial_cooldown": 500}},
              "archive": {"endpoint": "http://127.0.0.1:4400", "retry": "none", "breaker": "none"}},
              "routes": {"audit": {"scopes": ["audit.*"], "event_names": "login,logout", "metric_names": ["audit.*"],
                                   "destinations": ["vault"],
                                   "overflow": "block:250", "order": 2},
                         "zeta": {"span_names": "GET *"}}}}
            """#
        let path = directory + "/telemetry.json"
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        let configuration = try await TelemetryConfigurationSource(environment: [:], file: path).configuration()
        #expect(configuration.destinations.map(\.name) == ["archive", "vault"])
        let vault = try #require(configuration.destinations.last)
        #expect(
            vault.retry
                == ExportRetryPolicy(
                    initialDelay: .milliseconds(200), maximumDelay: .seconds(2), multiplier: 2, jitter: .full, maximumAttempts: 4,
                    maximumElapsedTime: nil), "\(String(describing: vault.retry))")
        #expect(
            vault.circuitBreaker == CircuitBreakerPolicy(failureThreshold: 3, cooldown: .seconds(60), initialCooldown: .milliseconds(500)))
        #expect(configuration.destinations.first?.retry == nil && configuration.destinations.first?.circuitBreaker == nil)
        #expect(vault.exporter.insecure && vault.exporter.timeout == .milliseconds(1), "\(vault.exporter)")
        #expect(vault.exporter.pool?.endpoints.count == 2 && vault.exporter.pool?.mode == .balanceByTrace, "\(vault.exporter)")
        #expect(configuration.routes.map(\.name) == ["zeta", "audit"], "by order (zeta's is 0), then name")
        let route = try #require(configuration.routes.last)
        #expect(route.eventNames == ["login", "logout"] && route.metricNames == ["audit.*"] && route.destinations == ["vault"])
        #expect(route.overflowPolicy == .block(upTo: .milliseconds(250)), "\(String(describing: route.overflowPolicy))")
    }
}
