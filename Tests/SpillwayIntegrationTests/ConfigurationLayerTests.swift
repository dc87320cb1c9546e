import Foundation
import Resilience
import ResilienceTesting
import SpillwayIntegration
import Synchronization
import Testing

@Suite("layered configuration and live reconfiguration")
struct ConfigurationLayerTests {
    @Test("defaults < environment < file (JSON and YAML) < code")
    func layers() async throws {
        let directory = temporaryDirectory()
        let yaml = directory + "/telemetry.yaml"
        try """
        otel:
          service:
            name: from-file
          exporter:
            otlp:
              endpoint: http://file:4318
              compression: gzip
          bsp:
            max:
              export:
                batch:
                  size: 64
          traces:
            sampler: parentbased_traceidratio
            sampler.arg: 0.5
        spillway:
          exception:
            stacktrace:
              severity: warn
        """.write(toFile: yaml, atomically: true, encoding: .utf8)
        let environment = [
            "OTEL_SERVICE_NAME": "from-env", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
            "OTEL_BLRP_SCHEDULE_DELAY": "250", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "32", "PATH": "/bin"
        ]
        let source = try await TelemetryConfigurationSource(environment: environment, file: yaml) { $0.serviceName = "from-code" }
        let configuration = try source.configuration()
        #expect(configuration.serviceName == "from-code")  // code > file > env
        #expect(configuration.exporter.endpoint == "http://file:4318")  // file > env
        #expect(configuration.exporter.compression == .gzip)
        #expect(configuration.logs.scheduleDelay == .milliseconds(250))  // env > default
        #expect(configuration.traces.maxExportBatchSize == 64)  // a YAML number
        #expect(configuration.traces.scheduleDelay == .seconds(5))  // default
        #expect(configuration.exceptionStackTraces == .atOrAbove(.warn))
        #expect(configuration.sampler == .parentBased(root: .traceIDRatio(0.5)))  // `sampler.arg` as a dotted key

        let json = directory + "/telemetry.json"
        try #"{"otel": {"exporter": {"otlp": {"endpoint": "http://json:4318", "timeout": 2500}}, "sdk": {"disabled": true}}}"#
            .write(toFile: json, atomically: true, encoding: .utf8)
        let fromJSON = try await TelemetryConfigurationSource(environment: environment, file: json).configuration()
        #expect(fromJSON.exporter.endpoint == "http://json:4318")
        #expect(fromJSON.exporter.timeout == .milliseconds(2500))
        #expect(!fromJSON.isEnabled)
        #expect(fromJSON.serviceName == "from-env")
    }

    @Test("an invalid value names the key, the value, where it came from and what is allowed")
    func errorsNameTheSource() async throws {
        let directory = temporaryDirectory()
        let file = directory + "/bad.json"
        try #"{"otel": {"traces": {"sampler": "sometimes"}}}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let source = try await TelemetryConfigurationSource(environment: [:], file: file)
        #expect {
            try source.configuration()
        } throws: { error in
            let e = error as! ConfigurationError
            return e.key == "OTEL_TRACES_SAMPLER" && e.value == "sometimes" && e.source == "file \(file), key otel.traces.sampler"
                && e.allowed.contains("parentbased_traceidratio")
        }
        #expect(throws: ConfigurationError.self) {
            try PipelineConfiguration.fromEnvironment(["OTEL_TRACES_SAMPLER_ARG": "1.5", "OTEL_TRACES_SAMPLER": "traceidratio"])
        }
        #expect {
            try PipelineConfiguration.fromEnvironment(["OTEL_SDK_DISABLED": "yes"])
        } throws: {
            ($0 as! ConfigurationError).description
                == #"invalid configuration: OTEL_SDK_DISABLED = "yes" (from environment); allowed: true, false"#
        }
        await #expect(throws: ConfigurationError.self) {
            _ = try await TelemetryConfigurationSource(environment: [:], file: directory + "/missing.yaml")
        }
        // A misspelt key under otel./spillway. is an error with a suggestion; the application's own keys are left alone.
        let typo = directory + "/typo.yaml"
        try "otel:\n  exporter:\n    otlp:\n      endpiont: http://x:4318\ncheckout:\n  port: 8080\n".write(
            toFile: typo, atomically: true, encoding: .utf8)
        let typoSource = try await TelemetryConfigurationSource(environment: [:], file: typo)
        #expect {
            try typoSource.configuration()
        } throws: { error in
            let e = error as! ConfigurationError
            return e.key == "otel.exporter.otlp.endpiont" && e.allowed.contains("did you mean otel.exporter.otlp.endpoint?")
        }
        try "x".write(toFile: directory + "/telemetry.toml", atomically: true, encoding: .utf8)
        await #expect(throws: ConfigurationError.self) {
            _ = try await TelemetryConfigurationSource(environment: [:], file: directory + "/telemetry.toml")
        }
        try "{ not json".write(toFile: directory + "/broken.json", atomically: true, encoding: .utf8)
        await #expect(throws: ConfigurationError.self) {
            _ = try await TelemetryConfigurationSource(environment: [:], file: directory + "/broken.json")
        }
    }

    @Test("a change that needs a restart is refused as a whole and names the running value")
    func restartOnlyChanges() async throws {
        let receiver = try await OTLPReceiver.start()
        let pipeline = try TelemetryPipeline(configuration: testConfiguration(receiver))
        var next = pipeline.configuration
        next.ringCapacity = 1 << 22
        next.sampler = .alwaysOff
        await #expect {
            try await pipeline.reconfigure(next)
        } throws: { error in
            let e = error as! ConfigurationError
            return e.key.hasPrefix("ringCapacity") && e.allowed.contains("1048576") && e.allowed.contains("restart")
        }
        #expect(pipeline.configuration.sampler == .parentBasedAlwaysOn, "nothing of a refused configuration is applied")
        var spill = pipeline.configuration
        spill.spill = SpillConfiguration(directory: temporaryDirectory())
        await #expect(throws: ConfigurationError.self) { try await pipeline.reconfigure(spill) }
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test("headers, compression, batch size and handlers change live; the next request carries them")
    func liveExporterAndBatchSettings() async throws {
        let receiver = try await OTLPReceiver.start(retention: [.records, .bodies])
        var configuration = testConfiguration(receiver)
        configuration.exporter.headers = ["x-tenant": "a"]
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let tracer = pipeline.tracer(scope: "live")
        tracer.startSpan("before").end()
        await pipeline.forceFlush()
        #expect(await eventually { receiver.spanCount == 1 })

        final class Seen: ExportErrorHandler, Sendable {
            let count = Mutex(0)
            func handleExportError(_ event: ExportFailureEvent) { count.withLock { $0 += 1 } }
        }
        let seen = Seen()
        var next = configuration
        next.exporter.headers = ["x-tenant": "b"]
        next.exporter.compression = .gzip
        next.traces.maxExportBatchSize = 10
        next.traces.scheduleDelay = .seconds(60)  // only a full batch of 10 can go now
        next.exportErrorHandler = seen
        try await pipeline.reconfigure(next)
        for _ in 0..<10 { tracer.startSpan("after").end() }
        #expect(await eventually { receiver.spanCount == 11 }, "a batch of the new size was not sent")
        let requests = receiver.bodies
        func header(_ request: OTLPReceiver.Request, _ name: String) -> String? {
            request.headers.first { $0.name.lowercased() == name }?.value
        }
        #expect(header(requests[0], "x-tenant") == "a" && header(requests[0], "content-encoding") == nil)
        #expect(header(requests[1], "x-tenant") == "b" && header(requests[1], "content-encoding") == "gzip")
        // The new handler gets the next failure (a 400: permanent, one event, the batch dropped).
        receiver.behavior = .fail(status: 400)
        for _ in 0..<10 { tracer.startSpan("rejected").end() }
        #expect(await eventually(timeout: .seconds(15)) { seen.count.withLock { $0 } > 0 }, "\(pipeline.stats())")
        #expect(pipeline.stats().spans.dropped[.exportFailed] == 10)
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test("disabled at start and toggled live: nothing is recorded while disabled, everything after")
    func disabledMode() async throws {
        let receiver = try await OTLPReceiver.start()
        var configuration = testConfiguration(receiver)
        configuration.isEnabled = false
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let tracer = pipeline.tracer(scope: "off")
        let logger = pipeline.logger(scope: "off")
        for _ in 0..<100 {
            let span = tracer.startSpan("nothing")
            #expect(!span.isRecording && !span.context.isValid)
            span.setAttribute("k", 1)
            if case .dropped(let reason) = span.end() {
                #expect(reason == .notRecorded)
            } else {
                Issue.record("a disabled span was queued")
            }
            if case .dropped(let reason) = logger.emit(body: "nothing") { #expect(reason == .notRecorded) } else { Issue.record("queued") }
        }
        var enabled = configuration
        enabled.isEnabled = true
        try await pipeline.reconfigure(enabled)
        tracer.startSpan("something").end()
        logger.emit(body: "something")
        await pipeline.forceFlush()
        #expect(await eventually { receiver.spanCount == 1 && receiver.logCount == 1 })
        let stats = pipeline.stats()
        #expect(stats.spans.emitted == 1 && stats.logs.emitted == 1 && stats.spans.droppedTotal == 0)
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await receiver.stop()
    }

    @Test("a reloading file swaps the collector under load: every record arrives exactly once, before on the old, after on the new")
    func receiverSwapUnderLoad() async throws {
        let first = try await OTLPReceiver.start()
        let second = try await OTLPReceiver.start()
        let directory = temporaryDirectory()
        let file = directory + "/telemetry.json"
        func write(endpoint: String, batch: Int, sampler: String) throws {
            let json =
                #"{"otel": {"exporter": {"otlp": {"endpoint": "\#(endpoint)"}}, "#
                + #""bsp": {"max": {"export": {"batch": {"size": \#(batch)}}}}, "traces": {"sampler": "\#(sampler)"}}}"#
            try json.write(toFile: file + ".tmp", atomically: false, encoding: .utf8)
            _ = rename(file + ".tmp", file)
        }
        try write(endpoint: first.endpoint, batch: 100, sampler: "always_on")
        let outcomes = Mutex<[TelemetryConfigurationSource.ReloadOutcome]>([])
        let source = try await TelemetryConfigurationSource(
            environment: [:], file: file, reloading: true, pollInterval: .milliseconds(50)
        ) { configuration in
            configuration.serviceName = "swap"
            configuration.traces.scheduleDelay = .milliseconds(20)
            configuration.retry = ExportRetryPolicy(
                initialDelay: .milliseconds(20), maximumDelay: .milliseconds(100), maximumElapsedTime: .seconds(5))
            configuration.selfMetrics = false
            // "Nothing lost" here means no drops: a full ring blocks the load thread instead
            // (a busy machine once dropped 97,218 spans as ring_full, which is not loss).
            configuration.overflowPolicy = .block(upTo: .seconds(30))
        }
        source.onReload { outcome in outcomes.withLock { $0.append(outcome) } }
        let pipeline = try TelemetryPipeline(configuration: source.configuration())
        #expect(pipeline.configuration.exporter.endpoint == first.endpoint)
        source.attach(pipeline)
        let watcher = Task { try await source.run() }

        // The load runs on its own thread (not the cooperative pool, which other suites may keep
        // busy) until the switch has happened and 3,000 more spans went out after it.
        let tracer = pipeline.tracer(scope: "load")
        let emitted = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let finished = Atomic<Bool>(false)
        Thread {
            var seq = 0
            while !stop.load(ordering: .relaxed) {
                let span = tracer.startSpan("op")
                span.setAttribute("spillway.load.seq", seq)
                span.end()
                seq += 1
                emitted.store(seq, ordering: .relaxed)
                // At most ~20 k spans/s: a loaded suite exported slower than the 100 k/s this once
                // allowed, filled the ring, and held the thread in a blocked emit past the waits below.
                if seq % 20 == 0 { usleep(1_000) }
            }
            finished.store(true, ordering: .releasing)
        }.start()
        #expect(await eventually(timeout: .seconds(30)) { emitted.load(ordering: .relaxed) > 3_000 })
        try write(endpoint: second.endpoint, batch: 50, sampler: "always_on")
        #expect(await eventually(timeout: .seconds(30)) { outcomes.withLock { $0.count } >= 1 }, "the reload was not seen")
        let switchedAt = emitted.load(ordering: .relaxed)
        #expect(await eventually(timeout: .seconds(30)) { emitted.load(ordering: .relaxed) > switchedAt + 3_000 })
        // A bad value later is refused and leaves the new endpoint in place.
        try write(endpoint: second.endpoint, batch: 50, sampler: "sometimes")
        #expect(await eventually(timeout: .seconds(30)) { outcomes.withLock { $0.count } >= 2 })
        stop.store(true, ordering: .relaxed)
        #expect(await eventually(timeout: .seconds(60)) { finished.load(ordering: .acquiring) })
        let total = emitted.load(ordering: .relaxed)
        await pipeline.forceFlush()
        // The books first (slowness is not loss), then the receivers, by sequence number.
        #expect(await eventually(timeout: .seconds(60)) { pipeline.stats().spans.pending == 0 }, "\(pipeline.stats())")
        let stats = pipeline.stats().spans
        #expect(stats.emitted == total && stats.droppedTotal == 0 && stats.exported == total, "\(stats)")
        #expect(
            await eventually(timeout: .seconds(30)) { first.spanCount + second.spanCount >= total },
            "first \(first.spanCount) second \(second.spanCount) total \(total)")

        var counts = [Int](repeating: 0, count: total)
        for span in first.spans + second.spans { if case .int(let seq)? = span.attributes["spillway.load.seq"] { counts[Int(seq)] += 1 } }
        #expect(counts.filter { $0 == 0 }.count == 0, "missing records")
        #expect(counts.filter { $0 > 1 }.count == 0, "duplicated records")
        #expect(first.spanCount > 0 && second.spanCount > 0, "first \(first.spanCount), second \(second.spanCount)")
        #expect(
            second.spans.contains { span in if case .int(let s)? = span.attributes["spillway.load.seq"] { s >= switchedAt } else { false } }
        )
        #expect(pipeline.configuration.exporter.endpoint == second.endpoint)
        #expect(pipeline.configuration.traces.maxExportBatchSize == 50)
        let results = outcomes.withLock { $0 }
        if case .success = results[0] {} else { Issue.record("the first reload failed: \(results[0])") }
        if case .failure(let error) = results.last! {
            #expect(error.key == "OTEL_TRACES_SAMPLER")
        } else {
            Issue.record("a bad sampler was accepted")
        }
        watcher.cancel()
        _ = try? await watcher.value
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
        try await first.stop()
        try await second.stop()
    }
}

@Suite("configuration documentation")
struct ConfigurationDocumentationTests {
    @Test("docs/configuration.md lists every key with its file key, default and live/restart, as the code has them")
    func readmeTableMatchesTheKeys() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        let rows = readme.split(separator: "\n").filter { $0.hasPrefix("| `OTEL_") || $0.hasPrefix("| `SPILLWAY_") }
        #expect(rows.count == ConfigurationKey.all.count)
        for key in ConfigurationKey.all {
            let row = rows.first { $0.hasPrefix("| `\(key.environmentVariable)` |") }
            #expect(row != nil, "\(key.environmentVariable) is not in the table of docs/configuration.md")
            guard let row else { continue }
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(cells[1] == "`\(key.fileKey)`")
            #expect(cells[4] == (key.isLive ? "live" : "restart"), "\(key.environmentVariable)")
        }
        // Every key the environment reader understands is in the table (an unknown one would be ignored).
        for variable in ["OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER_ARG", "SPILLWAY_SHUTDOWN_TIMEOUT", "OTEL_BLRP_EXPORT_TIMEOUT"] {
            #expect(ConfigurationKey.all.contains { $0.environmentVariable == variable })
        }
    }
}
