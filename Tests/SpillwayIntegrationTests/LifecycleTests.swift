import Foundation
import Glibc
import Logging
import Resilience
import ResilienceTesting
import ServiceLifecycle
import Synchronization
import Testing

@Suite("swift-service-lifecycle")
struct LifecycleTests {
    @Test("graceful shutdown of a ServiceGroup drains the pipeline: every record emitted before it is exported")
    func serviceGroupGracefulShutdown() async throws {
        let receiver = try await OTLPReceiver.start()
        var configuration = testConfiguration(receiver, scheduleDelay: .seconds(30))  // only shutdown exports
        configuration.shutdownTimeout = .seconds(10)
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let tracer = pipeline.tracer(scope: "lifecycle")
        let group = ServiceGroup(configuration: .init(services: [.init(service: pipeline)], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        for seq in 0..<5_000 {
            let span = tracer.startSpan("op")
            span.setAttribute("spillway.load.seq", seq)
            span.end()
        }
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(receiver.sequenceReport(expected: 5_000).description == "expected 5000, received 5000, missing 0, duplicates 0")
        let stats = pipeline.stats()
        #expect(stats.spans.exported == 5_000 && stats.spans.pending == 0)
        try await receiver.stop()
    }

    @Test("graceful shutdown with the collector down: what could not be sent is spilled and sealed, nothing dropped")
    func gracefulShutdownSpillsAndSeals() async throws {
        // The collector is down for the whole run: port 9, where nothing listens and which the system
        // never hands out. (A stopped receiver's port was once given to another test's receiver while
        // this ran: these 2,000 spans were "exported" there, and that test counted them as duplicates.)
        let directory = temporaryDirectory()
        var configuration = PipelineConfiguration(serviceName: "lifecycle-spill")
        configuration.exporter.endpoint = "http://127.0.0.1:9"
        configuration.traces.scheduleDelay = .milliseconds(20)
        configuration.retry = ExportRetryPolicy(
            initialDelay: .milliseconds(10), maximumDelay: .milliseconds(20), maximumElapsedTime: .milliseconds(100))
        configuration.selfMetrics = false
        configuration.spill = SpillConfiguration(directory: directory)
        configuration.shutdownTimeout = .seconds(2)
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let group = ServiceGroup(configuration: .init(services: [.init(service: pipeline)], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        let tracer = pipeline.tracer(scope: "lifecycle")
        for seq in 0..<2_000 {
            let span = tracer.startSpan("op")
            span.setAttribute("spillway.load.seq", seq)
            span.end()
        }
        await group.triggerGracefulShutdown()
        try await running.value
        let stats = pipeline.stats()
        #expect(stats.spans.droppedTotal == 0, "\(stats)")
        #expect(stats.spans.onDisk == 2_000, "\(stats)")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory + "/traces")
        #expect(!files.isEmpty && files.allSatisfy { !$0.hasSuffix(".open") }, "\(files)")
    }

    @Test(
        "SIGTERM to a child running Spillway.bootstrap in a ServiceGroup: a SIGHUP reload switches collectors, nothing is lost",
        .timeLimit(.minutes(2)))
    func sigtermInAChildProcess() async throws {
        let tool = repositoryRoot.appendingPathComponent(".build/debug/spillway").path
        try #require(FileManager.default.isExecutableFile(atPath: tool), "build the tool first (swift build): \(tool)")
        let first = try await OTLPReceiver.start()
        let second = try await OTLPReceiver.start()
        let file = temporaryDirectory() + "/telemetry.yaml"
        try "otel:\n  exporter:\n    otlp:\n      endpoint: \(first.endpoint)\n".write(toFile: file, atomically: true, encoding: .utf8)

        let child = Process()
        child.executableURL = URL(fileURLWithPath: tool)
        child.arguments = ["service-child", "--config", file]
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OTEL_") && !$0.key.hasPrefix("SPILLWAY_") }
        environment["OTEL_SERVICE_NAME"] = "lifecycle-child"
        child.environment = environment
        let output = Pipe()
        child.standardOutput = output
        let lines = Mutex<[String]>([])
        output.fileHandleForReading.readabilityHandler = { handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            lines.withLock { $0 += text.split(separator: "\n").map(String.init) }
        }
        try child.run()
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }
        #expect(await eventually(timeout: .seconds(30)) { lines.withLock { $0.contains("ready") } })
        #expect(await eventually(timeout: .seconds(30)) { first.spanCount > 500 && first.logCount > 500 })

        try "otel:\n  exporter:\n    otlp:\n      endpoint: \(second.endpoint)\n".write(toFile: file, atomically: true, encoding: .utf8)
        kill(child.processIdentifier, SIGHUP)
        #expect(
            await eventually(timeout: .seconds(30)) { lines.withLock { $0.contains("reloaded \(second.endpoint)") } },
            "\(lines.withLock { $0 })")
        #expect(await eventually(timeout: .seconds(30)) { second.spanCount > 500 })

        kill(child.processIdentifier, SIGTERM)
        #expect(await eventually(timeout: .seconds(45)) { !child.isRunning })
        child.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        let rest = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let all = lines.withLock { $0 } + rest.split(separator: "\n").map(String.init)
        #expect(child.terminationStatus == 0, "\(all.suffix(5))")
        let emittedLine = try #require(all.first { $0.hasPrefix("emitted ") }, "\(all.suffix(5))")
        let emitted = try #require(Int(emittedLine.dropFirst(8)))

        // Count by id across both collectors: every span and every log record exactly once.
        var spans = [Int](repeating: 0, count: emitted)
        for span in first.spans + second.spans {
            if case .int(let seq)? = span.attributes["spillway.load.seq"], seq < emitted { spans[Int(seq)] += 1 }
        }
        var logs = [Int](repeating: 0, count: emitted)
        var correlated = 0
        let spanIDs = Set((first.spans + second.spans).map(\.spanID))
        for record in first.logRecords + second.logRecords {
            if case .string(let s)? = record.attributes["spillway.load.seq"], let seq = Int(s), seq < emitted { logs[seq] += 1 }
            if spanIDs.contains(record.spanID) { correlated += 1 }
        }
        #expect(spans.filter { $0 == 0 }.count == 0 && spans.filter { $0 > 1 }.count == 0, "spans: \(emitted) emitted")
        #expect(logs.filter { $0 == 0 }.count == 0 && logs.filter { $0 > 1 }.count == 0, "logs: \(emitted) emitted")
        #expect(correlated == emitted, "every log record carries its span's ids")
        #expect(first.spans.first?.resource["service.name"] == .string("lifecycle-child"))
        #expect(all.contains("books spans \(emitted) \(emitted) 0 logs \(emitted) \(emitted) 0"), "\(all.suffix(3))")
        try await first.stop()
        try await second.stop()
    }
}
