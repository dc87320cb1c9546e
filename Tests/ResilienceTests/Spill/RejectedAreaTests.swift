import Foundation
import Glibc
import Resilience
import ResilienceTesting
import Testing

private func spillDirectory() -> String {
    TestDirectory.make("rejected")
}

private func configuration(_ receiver: OTLPReceiver, directory: String, handler: (any ExportErrorHandler)? = nil) -> PipelineConfiguration {
    var configuration = PipelineConfiguration(serviceName: "rejected")
    configuration.exporter.endpoint = receiver.endpoint
    configuration.traces.scheduleDelay = .milliseconds(50)
    configuration.retry = ExportRetryPolicy(
        initialDelay: .milliseconds(20), maximumDelay: .milliseconds(50), jitter: .none, maximumElapsedTime: .milliseconds(300))
    configuration.circuitBreaker = CircuitBreakerPolicy(failureThreshold: 3, cooldown: .seconds(2), initialCooldown: .milliseconds(300))
    configuration.spill = SpillConfiguration(directory: directory, durability: .always, io: testIO)
    configuration.overflowPolicy = .block(upTo: .seconds(10))
    configuration.exportErrorHandler = handler
    return configuration
}

private func emit(_ pipeline: TelemetryPipeline, _ range: Range<Int>) {
    let tracer = pipeline.tracer(scope: "rejected")
    for i in range {
        let span = tracer.startSpan("s")
        span.setAttribute("spillway.load.seq", i)
        span.end()
    }
}

private func files(_ directory: String, _ suffix: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(suffix) }.sorted()
}

/// The books: everything emitted (or recovered) is exported, dropped or on disk.
private func settled(_ pipeline: TelemetryPipeline) -> Bool {
    let s = pipeline.stats().spans
    return s.pending == 0 && s.emitted + s.recovered == s.exported + s.droppedTotal + s.onDisk && pipeline.unbalancedBooks().isEmpty
}

@Suite struct RejectedAreaTests {
    /// A wrong API key once destroyed audit logs: each batch was dropped as `export_failed`.
    @Test(.timeLimit(.minutes(3)))
    func aWrongAPIKeyKeepsEveryBatchInTheRejectedAreaAndAReconfigureDeliversThemExactlyOnce() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        receiver.behavior = .fail(status: 401)
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let events = EventLog()
        let pipeline = try TelemetryPipeline(configuration: configuration(receiver, directory: directory, handler: events))
        emit(pipeline, 0..<3_000)
        #expect(
            await eventually(timeout: .seconds(20)) { settled(pipeline) && pipeline.stats().spans.onDisk == 3_000 }, "\(pipeline.stats())")
        let stats = pipeline.stats()
        #expect(stats.spans.droppedTotal == 0 && stats.spans.rejected > 0, "kept, not dropped: \(stats)")
        #expect(stats.spans.rejectedOnDisk == stats.spans.rejected)
        #expect(stats.misconfiguration?.contains("401") == true, "\(String(describing: stats.misconfiguration))")
        let health = pipeline.health()
        guard case .unhealthy(let reasons) = health, reasons.contains(.misconfigured) else {
            Issue.record("health: \(health)")
            return
        }
        // While misconfigured, batches wait on disk: one probe per cool-down, not one request per batch.
        // The bound follows the time it took (a loaded machine stretches it, and with it the
        // number of cool-downs): at most one probe per shortest cool-down (300 ms), plus one.
        let before = receiver.requestCount
        let clock = ContinuousClock()
        let start = clock.now
        emit(pipeline, 3_000..<6_000)
        #expect(await eventually(timeout: .seconds(20)) { settled(pipeline) && pipeline.stats().spans.onDisk == 6_000 })
        let probes = receiver.requestCount - before
        let allowed = max(6, 1 + Int((clock.now - start) / .milliseconds(300)))
        #expect(probes <= allowed, "\(probes) requests while misconfigured, at most \(allowed) allowed in \(clock.now - start)")
        // The rejected area: segments with the collector's answer beside each frame, readable by opentelemetry-proto.
        _ = events.all  // handlers saw `.rejected(segment:)`
        #expect(events.all.contains { if case .rejected = $0.outcome { true } else { false } })
        let rejected = directory + "/rejected/traces"
        #expect(!(files(rejected, ".spill") + files(rejected, ".open")).isEmpty)
        let answers = try String(contentsOfFile: rejected + "/" + files(rejected, ".rejections")[0], encoding: .utf8)
        #expect(answers.contains("\"status\":401") && answers.contains("\"kind\":\"misconfigured\""), "\(answers)")
        let (status, output) = try await runPython([repositoryRoot.path + "/Tests/conformance/check_spill.py", rejected])
        #expect(status == 0 && output.contains("\"flags\": 1"), "\(output)")

        // The key is fixed: the reconfigure ends the misconfiguration and everything is replayed.
        receiver.behavior = .accept
        try await pipeline.reconfigure(pipeline.configuration)
        #expect(await eventually(timeout: .seconds(30)) { settled(pipeline) && pipeline.stats().spans.onDisk == 0 }, "\(pipeline.stats())")
        let after = pipeline.stats()
        #expect(after.spans.exported == 6_000 && after.spans.droppedTotal == 0 && after.misconfiguration == nil, "\(after)")
        let report = receiver.sequenceReport(expected: 6_000)
        #expect(report.missing == 0 && report.duplicates == 0, "\(report)")
        #expect(!pipeline.health().reasons.contains(.misconfigured))
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test(.timeLimit(.minutes(3)))
    func aProbeThatSucceedsEndsTheMisconfigurationWithoutAReconfigure() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        receiver.behavior = .fail(status: 403)
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
        emit(pipeline, 0..<2_000)
        #expect(await eventually(timeout: .seconds(20)) { settled(pipeline) && pipeline.stats().spans.onDisk == 2_000 })
        receiver.behavior = .accept  // the collector's side was fixed
        #expect(
            await eventually(timeout: .seconds(30)) { settled(pipeline) && pipeline.stats().spans.exported == 2_000 }, "\(pipeline.stats())"
        )
        #expect(receiver.sequenceReport(expected: 2_000).missing == 0)
        #expect(receiver.duplicateSpanIDs == 0)
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    /// 400 keeps its meaning — the data was refused, counted as dropped — and a copy is kept.
    @Test(.timeLimit(.minutes(3)))
    func aRefusedRequestIsDroppedAndACopyIsKeptInTheRefusedArea() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        receiver.behavior = .fail(status: 400)
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let events = EventLog()
        let pipeline = try TelemetryPipeline(configuration: configuration(receiver, directory: directory, handler: events))
        emit(pipeline, 0..<1_000)
        #expect(await eventually(timeout: .seconds(20)) { pipeline.stats().spans.dropped[.exportFailed] == 1_000 })
        let stats = pipeline.stats()
        #expect(stats.spans.onDisk == 0 && stats.spans.rejected == 0 && settled(pipeline), "copies are not in the books: \(stats)")
        #expect(await eventually { events.droppedByReason[.exportFailed] == 1_000 })
        #expect(events.all.allSatisfy { $0.keptCopy?.hasPrefix("refused/traces/") == true }, "\(events.all.map(\.keptCopy))")
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        let refused = directory + "/refused/traces"
        #expect(!files(refused, ".spill").isEmpty && !files(refused, ".rejections").isEmpty)
        let (status, output) = try await runPython([repositoryRoot.path + "/Tests/conformance/check_spill.py", refused])
        #expect(status == 0 && output.contains("\"parsed_records\""), "\(output)")
        try await receiver.stop()
    }

    @Test func aSecondPipelineOnTheSameDirectoryIsRefusedAndTheFirstReleasesItAtShutdown() async throws {
        let receiver = try await OTLPReceiver.start()
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
        do {
            _ = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
            Issue.record("two pipelines spill to one directory")
        } catch {
            #expect(error.key == "spill.directory" && error.allowed.contains("held by process \(getpid())"), "\(error)")
        }
        _ = await first.shutdown(deadline: .now + .seconds(2))
        let second = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
        _ = await second.shutdown(deadline: .now + .seconds(2))
        try await receiver.stop()
    }

    /// A header value never appears in an output, a log, an event or a spill file — not even
    /// when the collector repeats it in its answer.
    @Test(.timeLimit(.minutes(3)))
    func aCredentialTheCollectorEchoesIsRedactedEverywhere() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        receiver.behavior = .failEchoingHeader(status: 401, header: "api-key")
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let events = EventLog()
        let logs = LogCapture()
        var configuration = configuration(receiver, directory: directory, handler: events)
        configuration.exporter.headers = ["api-key": "SECRET-9f8e7d"]
        let pipeline = try TelemetryPipeline(configuration: configuration, logger: logs.logger)
        emit(pipeline, 0..<1_000)
        #expect(await eventually(timeout: .seconds(20)) { settled(pipeline) && pipeline.stats().spans.rejected > 0 })
        let stats = pipeline.stats()
        _ = await pipeline.shutdown(deadline: .now + .seconds(2))
        #expect(receiver.diagnostics.statuses[401] ?? 0 > 0, "the collector did echo it")
        var seen = [
            "stats": "\(stats) \(stats.lastError ?? "") \(stats.misconfiguration ?? "")",
            "configuration": "\(configuration) \(String(reflecting: configuration.exporter))"
        ]
        seen["events"] = events.all.map { "\($0) \($0.error)" }.joined(separator: "\n")
        seen["logs"] = logs.lines.joined(separator: "\n")
        var dumped = ""
        dump(configuration.exporter, to: &dumped)
        seen["dump"] = dumped
        for area in ["traces", "rejected/traces"] {
            for name in files(directory + "/" + area, "") {
                seen["\(area)/\(name)"] = String(
                    decoding: (try? Data(contentsOf: URL(fileURLWithPath: directory + "/" + area + "/" + name))) ?? Data(), as: UTF8.self)
            }
        }
        #expect(seen.keys.contains { $0.hasSuffix(".rejections") }, "\(seen.keys)")
        for (place, text) in seen { #expect(!text.contains("SECRET-9f8e7d"), "the credential appears in \(place): \(text.prefix(300))") }
        #expect(seen["events"]!.contains("<redacted>"), "what the collector said is kept, minus the credential")
        try await receiver.stop()
    }
}

extension RejectedAreaTests {
    /// After a 401, `replay` delivered what was spilled and said nothing of the records in
    /// `rejected/`: the tools now end by naming what stays on disk and the command that sends it.
    @Test(.timeLimit(.minutes(3)))
    func inspectAndReplayNameWhatStaysInTheRejectedAreaAndTheCommandThatSendsIt() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        receiver.behavior = .fail(status: 401)
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
        emit(pipeline, 0..<2_000)
        #expect(await eventually(timeout: .seconds(20)) { settled(pipeline) && pipeline.stats().spans.onDisk == 2_000 })
        let rejected = pipeline.stats().spans.rejectedOnDisk
        let spilled = 2_000 - rejected
        #expect(rejected > 0, "\(pipeline.stats())")
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))

        func grouped(_ n: Int) -> String {
            let digits = Array(String(n))
            return String(digits.enumerated().flatMap { i, c in i > 0 && (digits.count - i) % 3 == 0 ? [",", c] : [c] })
        }
        let inspect = try await FileToolTests.run(["inspect", directory])
        #expect(inspect.output.contains("left on disk: \(grouped(rejected)) records rejected"), "\(inspect.output)")
        #expect(inspect.output.contains("spillway replay --rejected \(directory)"), "\(inspect.output)")
        receiver.behavior = .accept
        let replay = try await FileToolTests.run(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"])
        #expect(replay.output.contains("left on disk: \(grouped(rejected)) records rejected"), "\(replay.output)")
        #expect(!replay.output.contains("records spilled"), "the spilled area was sent: \(replay.output)")
        let rest = try await FileToolTests.run(["replay", "--rejected", directory, "--endpoint", receiver.endpoint, "--quiet"])
        #expect(rest.status == 0 && !rest.output.contains("left on disk"), "\(rest.output)")
        #expect(receiver.uniqueSpanIDs == 2_000, "every record once: \(spilled) spilled, \(rejected) rejected")
        try await receiver.stop()
    }
}
