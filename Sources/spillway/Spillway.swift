import ArgumentParser
import Foundation
import Resilience
import ResilienceTesting
import Synchronization

@main
struct Spillway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spillway",
        abstract: "Telemetry that survives its collector: spill files, a load generator, a demo.",
        discussion: """
            Exit status: 0 success; 1 a failure or a data problem (records dropped, left on disk, damaged, \
            refused; a path that is not a spill segment or directory); 64 a usage error; 130 interrupted (load).
            """,
        version: spillwayVersion,
        subcommands: [
            Load.self, Demo.self, Status.self, Inspect.self, Verify.self, Decode.self, Replay.self, Recover.self, Receive.self, Faults.self,
            SpillChild.self,
            ServiceChild.self
        ])
}

struct LoadOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Spans to emit.") var spans = 100_000
    @Option(parsing: .unconditional, help: "Log records to emit.") var logs = 0
    @Option(
        parsing: .unconditional,
        help: "Metric updates through the swift-metrics API (a counter over 4 regions, a gauge, a histogram), exported as OTLP.")
    var metrics = 0
    @Option(parsing: .unconditional, help: "Records per second, all threads together; 0 is as fast as possible.") var rate: Double = 0
    @Option(parsing: .unconditional, help: "Emitting threads.") var threads = 1
    @Flag(help: "No progress bar.") var quiet = false
    @Option(help: .hidden) var sequenceStart = 0
    @Flag(help: .hidden) var reportAcks = false
    @Option(help: .hidden) var crashAt: Int?
    @Option(help: .hidden) var crashWith = "abort"
    @Option(help: .hidden) var routeDurability: String?

    static let maximumRecords = 1_000_000_000_000

    func validate() throws {
        for (name, value) in [("--spans", spans), ("--logs", logs), ("--metrics", metrics)] where !(0...Self.maximumRecords).contains(value)
        {
            throw ValidationError("\(name): a count from 0 to \(grouped(Self.maximumRecords)), got \(value)")
        }
        guard (1...1024).contains(threads) else { throw ValidationError("--threads: from 1 to 1024, got \(threads)") }
        guard rate.isFinite, rate >= 0, rate <= 1e9 else {
            throw ValidationError("--rate: records per second from 0 (unlimited) to 1e9, got \(rate)")
        }
    }

    var generator: LoadGenerator {
        LoadGenerator(
            spans: spans, logs: logs, rate: rate, threads: threads, showProgress: !quiet, sequenceStart: sequenceStart, metrics: metrics,
            reportAcks: reportAcks, crash: crashAt.map { ($0, crashWith) })
    }
}

/// A load generator must not lose what it counts: unless `SPILLWAY_OVERFLOW` says otherwise, a
/// full ring blocks the emitting thread (up to a minute) instead of dropping.
func loadConfiguration(endpoint: String?, spillDirectory: String? = nil, events: EventTally) throws -> PipelineConfiguration {
    // --spill-dir is SPILLWAY_SPILL_DIR: the other spill keys of the environment apply to it.
    var environment = ProcessInfo.processInfo.environment
    if let spillDirectory { environment["SPILLWAY_SPILL_DIR"] = spillDirectory }
    var configuration = try PipelineConfiguration.fromEnvironment(environment).withExportErrorHandler(events)
    if let endpoint { configuration.exporter.endpoint = endpoint }
    if configuration.serviceName == nil { configuration.serviceName = "spillway-load" }
    if ProcessInfo.processInfo.environment["SPILLWAY_OVERFLOW"] == nil { configuration.overflowPolicy = .block(upTo: .seconds(60)) }
    return configuration
}

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Emit numbered spans and logs through a pipeline to a collector; print the books.",
        discussion: """
            Reads the OTEL_* and SPILLWAY_* environment like the library (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, \
            _COMPRESSION, OTEL_BSP_*, SPILLWAY_SPILL_DURABILITY, …). Every span carries spillway.load.seq. \
            Ctrl-C stops emitting, drains (or spills) what was emitted, prints the books and exits 130; \
            a second Ctrl-C quits at once.
            """)

    @Option(help: "OTLP/HTTP base URL (default: OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4318).") var endpoint: String?
    @Option(help: "Spill what cannot be delivered to this directory (default: SPILLWAY_SPILL_DIR).") var spillDir: String?
    @Option(parsing: .unconditional, help: "How long shutdown may take to export what is left, in seconds.") var drainTimeout: Int = 30
    @Option(help: .hidden) var waitForBacklog: Int = 0
    @Option(help: .hidden) var reconfigureAt: Double?
    @Flag(help: .hidden) var json = false
    @OptionGroup var load: LoadOptions

    func validate() throws {
        guard (1...3600).contains(drainTimeout) else {
            throw ValidationError("--drain-timeout: seconds from 1 to 3600, got \(drainTimeout)")
        }
    }

    func run() async throws {
        let events = EventTally()
        let pipeline: TelemetryPipeline
        do {
            var configuration = try loadConfiguration(endpoint: endpoint, spillDirectory: spillDir, events: events)
            if let text = load.routeDurability {
                // The crash tests: the load's records on a route of this durability.
                guard let durability = ExportRoute.Durability(parsing: text) else {
                    throw ValidationError("--route-durability: \(ExportRoute.Durability.allowedSpellings), got \(text)")
                }
                configuration.routes = [ExportRoute("load", scopes: ["spillway.load"], durability: durability)]
            }
            pipeline = try TelemetryPipeline(configuration: configuration)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        let interrupted = StopFlag()
        let interrupts = Interrupts {
            if interrupted.isSet {
                printError("\nspillway load: interrupted twice; quitting without draining")
                Foundation.exit(130)
            }
            interrupted.set()
            printError("\nspillway load: interrupted; draining what was emitted (Ctrl-C again to quit at once)")
        }
        // The fault suite's "the operator fixed the configuration": a live reconfigure at this time.
        let reconfigure = reconfigureAt.map { at in
            Task {
                try await Task.sleep(for: .milliseconds(Int64(at * 1000)))
                try await pipeline.reconfigure(pipeline.configuration)
            }
        }
        let emitStart = ContinuousClock.now
        let result = load.generator.run(pipeline: pipeline, stop: interrupted)
        // The fault suite waits for the spill store's backlog to be replayed before shutting down.
        let backlogDeadline = ContinuousClock.now + .seconds(waitForBacklog)
        while waitForBacklog > 0 && !interrupted.isSet && ContinuousClock.now < backlogDeadline {
            let stats = pipeline.stats()
            if stats.spans.onDisk + stats.logs.onDisk == 0 && stats.spans.pending + stats.logs.pending == 0 && stats.ringBytesInUse == 0 {
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        _ = try? await reconfigure?.value
        // Shutdown exports what is left (or spills it); say what it is waiting for meanwhile.
        let shutdown = Task { await pipeline.shutdown(deadline: .now + .seconds(drainTimeout)) }
        let waiting =
            load.quiet
            ? nil
            : Task {
                try await Task.sleep(for: .seconds(1))
                while !Task.isCancelled {
                    printError("\r" + waitingStatus(pipeline.stats()) + "    ", terminator: "")
                    try await Task.sleep(for: .seconds(1))
                }
            }
        let summary = await shutdown.value
        let settled = ContinuousClock.now - emitStart
        if let waiting {
            waiting.cancel()
            printError("")
        }
        _ = interrupts
        let stats = summary.stats
        print(
            "emitted:  \(stats.spans.emitted) spans, \(stats.logs.emitted) logs in "
                + "\(String(format: "%.2f", seconds(result.elapsed))) s (\(formatRate(Double(result.emitted) / seconds(result.elapsed)))/s)"
        )
        // Until shutdown returned: what an outage run's "into the spill store" rate is measured by.
        print(
            "settled:  \(String(format: "%.2f", seconds(settled))) s after emitting began, shutdown included "
                + "(\(formatRate(Double(result.emitted) / seconds(settled)))/s): every record exported, on disk or dropped")
        print(
            "emit:     p50 \(formatNanoseconds(result.emitNanosecondsP50)), p99 \(formatNanoseconds(result.emitNanosecondsP99)), "
                + "max \(formatNanoseconds(result.emitNanosecondsMax)) per call on the emitting threads")
        print("exported: \(stats.spans.exported) spans, \(stats.logs.exported) logs")
        print("dropped:  \(dropped(stats.spans)) spans, \(dropped(stats.logs)) logs")
        if load.metrics > 0 || stats.metrics.emitted > 0 {
            print(
                "metrics:  \(load.metrics) updates in \(stats.metricSeries) series; data points collected \(stats.metrics.emitted), "
                    + "exported \(stats.metrics.exported), dropped \(dropped(stats.metrics)), on disk \(stats.metrics.onDisk)")
        }
        print(
            "exports:  \(stats.exportAttempts) requests, \(stats.exportFailures) failed, \(stats.retries) retries, "
                + "\(stats.circuitBreakerTrips) breaker trips\(stats.lastError.map { "; last error: \($0)" } ?? "")"
        )
        print("events:   \(events.summary)")
        if stats.spans.spilled + stats.logs.spilled + stats.spans.rejected + stats.logs.rejected > 0 {
            print(
                "spilled:  \(stats.spans.spilled) spans, \(stats.logs.spilled) logs; on disk now: \(stats.spans.onDisk) spans, "
                    + "\(stats.logs.onDisk) logs"
            )
        }
        if summary.deadlineExceeded { print("shutdown: the \(drainTimeout) s drain deadline passed") }
        if json { print(jsonSummary(stats, result)) }
        if interrupted.isSet {
            print("interrupted after \(result.emitted) of \(load.spans + load.logs) records")
            throw ExitCode(130)
        }
        // Exit 0 when every record was exported or is safe on disk, and nothing was dropped.
        let complete =
            stats.spans.droppedTotal + stats.logs.droppedTotal + stats.metrics.droppedTotal == 0
            && stats.spans.exported + stats.spans.onDisk - stats.spans.recovered >= load.spans
            && stats.logs.exported + stats.logs.onDisk - stats.logs.recovered >= load.logs
        if !complete { throw ExitCode(1) }
    }
}

/// One JSON object with the books, for the fault suite.
func jsonSummary(_ stats: PipelineStats, _ result: LoadGenerator.Result) -> String {
    func signal(_ s: PipelineStats.Signal) -> String {
        let dropped = s.dropped.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
        return
            "{\"emitted\":\(s.emitted),\"exported\":\(s.exported),\"dropped\":{\(dropped)},\"spilled\":\(s.spilled),"
            + "\"rejected\":\(s.rejected),"
            + "\"replayed\":\(s.replayed),\"recovered\":\(s.recovered),\"on_disk\":\(s.onDisk),\"pending\":\(s.pending),"
            + "\"export_window_peak\":\(s.exportWindowPeak)}"
    }
    return "{\"spans\":\(signal(stats.spans)),\"logs\":\(signal(stats.logs)),\"metrics\":\(signal(stats.metrics)),"
        + "\"attempts\":\(stats.exportAttempts),"
        + "\"emit_max_ns\":\(result.emitNanosecondsMax),\"emit_ns\":\(Int(result.emitNanosecondsPerRecord)),"
        + "\"emit_p50_ns\":\(result.emitNanosecondsP50),\"emit_p99_ns\":\(result.emitNanosecondsP99),"
        + "\"elapsed_s\":\(seconds(result.elapsed))}"
}

/// `0`, or `12 (ring_full 10, shutdown 2)`.
func dropped(_ signal: PipelineStats.Signal) -> String {
    guard signal.droppedTotal > 0 else { return "0" }
    let reasons = signal.dropped.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    return "\(signal.droppedTotal) (\(reasons))"
}

/// One line on what shutdown waits for: records not yet delivered, the breaker, retries, held batches.
func waitingStatus(_ stats: PipelineStats) -> String {
    let pending = stats.spans.pending + stats.logs.pending + stats.metrics.pending
    var parts = ["draining: \(pending) records not yet delivered, \(stats.ringBytesInUse) bytes in the ring"]
    if let state = stats.circuitBreakerState, state != .closed { parts.append("breaker \(state.rawValue)") }
    if stats.batchesHeldInMemory > 0 { parts.append("\(stats.batchesHeldInMemory) batches held in memory") }
    parts.append("\(stats.retries) retries")
    if let error = stats.lastError { parts.append("last error: \(error.prefix(80))") }
    return parts.joined(separator: "; ")
}

/// Runs `handler` on SIGINT (on a dispatch queue) while alive.
final class Interrupts {
    private let source: any DispatchSourceSignal

    init(_ handler: @escaping @Sendable () -> Void) {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT)
        source.setEventHandler(handler: handler)
        source.resume()
    }

    deinit {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a load to the embedded receiver (optionally failing) and report what arrived.")

    @OptionGroup var load: LoadOptions
    @Option(help: "Fraction of requests the receiver fails, half with 503 and half with a connection reset (0 to 1).")
    var faults: Double = 0
    @Option(
        help: """
            Take the collector down (it answers 503) for this long in the middle of the run (20s, 500ms), with a spill store \
            in a temporary directory, and draw the run as an SVG timeline (--svg).
            """)
    var outage: String?
    @Option(help: "Where --outage writes its picture.") var svg = "outage.svg"

    func validate() throws {
        guard (0...1).contains(faults) else { throw ValidationError("--faults must be from 0 to 1, got \(faults)") }
        if let outage {
            guard let duration = parseDuration(outage), duration > .zero, duration <= .seconds(3600) else {
                throw ValidationError("--outage: a duration from 1ms to 3600s such as 20s or 500ms, got \(outage)")
            }
            // Before the run, not after it: a path that cannot be written is a usage error.
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: svg, isDirectory: &isDirectory), isDirectory.boolValue {
                throw ValidationError("--svg: \(svg) is a directory; name the file to write (such as \(svg)/outage.svg)")
            }
            let directory = (svg as NSString).deletingLastPathComponent
            guard access(directory.isEmpty ? "." : directory, W_OK) == 0 else {
                throw ValidationError("--svg: cannot write in \(directory.isEmpty ? "." : directory) (\(String(cString: strerror(errno))))")
            }
        }
    }

    func run() async throws {
        if let outage, let duration = parseDuration(outage) {
            try await OutageDemo(load: load, outage: duration, svgPath: svg).run()
            return
        }
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        if faults > 0 { receiver.behavior = .randomFaults(rate: faults, seed: 1) }
        let events = EventTally()
        var configuration = try loadConfiguration(endpoint: receiver.endpoint, events: events)
        configuration.retry = ExportRetryPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(200))
        configuration.circuitBreaker = CircuitBreakerPolicy(failureThreshold: 5, cooldown: .milliseconds(500))
        configuration.traces.maxConcurrentExports = 4
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let failing = faults > 0 ? " failing \(Int(faults * 100)) % of requests (503 or reset)" : ""
        print(
            "spillway demo: receiver at \(receiver.endpoint)\(failing); "
                + "emitting \(load.spans) spans and \(load.logs) logs from \(load.threads) thread(s)")
        fflush(nil)  // stdout before the progress bar on standard error
        let start = ContinuousClock.now
        let result = load.generator.run(pipeline: pipeline)
        await pipeline.forceFlush()
        let elapsed = ContinuousClock.now - start
        let summary = await pipeline.shutdown(deadline: .now + .seconds(30))
        try await receiver.stop()
        let spans = receiver.sequenceReport(expected: load.spans, signal: .traces)
        let logs = receiver.sequenceReport(expected: load.logs, signal: .logs)
        let stats = summary.stats
        let lost = spans.missing + logs.missing
        print(
            """

            emitted:     \(stats.spans.emitted) spans, \(stats.logs.emitted) logs
            received:    \(receiver.spanCount) spans, \(receiver.logCount) logs (\(receiver.acceptedRequestCount) requests)
            lost:        \(lost)   (by spillway.load.seq: spans \(spans); logs \(logs))
            dropped:     \(dropped(stats.spans)) spans, \(dropped(stats.logs)) logs
            exports:     \(stats.exportAttempts) requests, \(stats.exportFailures) failed, \(stats.retries) retries, \
            \(stats.circuitBreakerTrips) breaker trips
            events:      \(events.summary)
            throughput:  \(formatRate(Double(load.spans + load.logs) / seconds(elapsed))) records/s end to end \
            (\(String(format: "%.2f", seconds(elapsed))) s)
            emit:        p50 \(formatNanoseconds(result.emitNanosecondsP50)), p99 \(formatNanoseconds(result.emitNanosecondsP99)) per call \
            on the emitting threads; mean \(formatNanoseconds(UInt64(result.emitNanosecondsPerRecord))), which counts the time \
            they were descheduled while the demo's receiver and exporter shared the cores
            """)
        if lost > 0 || spans.duplicates + logs.duplicates > 0 { throw ExitCode(1) }
    }
}

/// Counts export failure events by outcome, for the summary (the handler API in use).
final class EventTally: ExportErrorHandler, Sendable {
    private let counts = Mutex<[String: Int]>([:])

    func handleExportError(_ event: ExportFailureEvent) {
        let key: String
        switch event.outcome {
        case .willRetry: key = "retry scheduled"
        case .heldInMemory: key = "held in memory"
        case .spilled: key = "spilled"
        case .rejected: key = "kept as rejected"
        case .dropped(let reason): key = "dropped \(reason)"
        }
        counts.withLock { $0[key, default: 0] += 1 }
    }

    var summary: String {
        let all = counts.withLock { $0 }
        return all.isEmpty ? "none" : all.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }
}
