import Foundation
import Resilience
import ResilienceTesting
import Synchronization
import Testing

private func spillDirectory() -> String {
    TestDirectory.make("pool")
}

/// A pipeline over a pool of `receivers`, with a spill store when `directory` is given. A full
/// ring blocks (nothing here may be dropped); breakers open after 3 failures for 200 ms at first.
private func poolConfiguration(_ endpoints: [String], mode: CollectorPoolConfiguration.Mode, directory: String?) -> PipelineConfiguration {
    var configuration = PipelineConfiguration(serviceName: "pool")
    configuration.exporter.pool = CollectorPoolConfiguration(endpoints: endpoints, mode: mode)
    configuration.exporter.timeout = .seconds(30)
    configuration.traces.scheduleDelay = .milliseconds(50)
    configuration.logs.scheduleDelay = .milliseconds(50)
    configuration.retry = .fastForTests
    configuration.circuitBreaker = CircuitBreakerPolicy(failureThreshold: 3, cooldown: .seconds(1), initialCooldown: .milliseconds(200))
    configuration.spill = directory.map { SpillConfiguration(directory: $0, io: testIO) }
    configuration.overflowPolicy = .block(upTo: .seconds(30))
    configuration.ringCapacity = 1 << 22
    return configuration
}

/// Traces of 1–20 spans (a fixed sequence), emitted trace by trace; remembers each span's trace.
private final class TraceLoad: Sendable {
    private let traceOfSpan = Mutex<[UInt64: Int]>([:])
    private let nextTrace = Atomic<Int>(0)
    private let random = Mutex<UInt64>(42)

    /// Emits traces until `spans` more spans are out; returns how many were emitted.
    func emit(_ pipeline: TelemetryPipeline, spans: Int) -> Int {
        let tracer = pipeline.tracer(scope: "pool.load")
        var emitted = 0
        var ids: [(UInt64, Int)] = []
        while emitted < spans {
            let size = min(
                spans - emitted,
                Int(
                    random.withLock {
                        $0 = collectorPoolMix($0)
                        return $0
                    } % 20) + 1)
            let trace = nextTrace.add(1, ordering: .relaxed).newValue
            let root = tracer.startSpan("root")
            ids.append((root.context.spanID.value, trace))
            for _ in 1..<size {
                let child = tracer.startSpan("child", parent: root.context)
                ids.append((child.context.spanID.value, trace))
                child.end()
            }
            root.end()
            emitted += size
        }
        traceOfSpan.withLock { map in for (span, trace) in ids { map[span] = trace } }
        return emitted
    }

    var spans: [UInt64: Int] { traceOfSpan.withLock { $0 } }
    /// Traces emitted so far (the next trace's number).
    var traces: Int { nextTrace.load(ordering: .relaxed) }
}

/// What arrived, counted by span id across every receiver of every pool slot.
private struct Arrivals: CustomStringConvertible {
    var missing = 0
    var duplicated = 0
    var traces = 0
    var wholeTraces = 0
    var perSlot: [Int] = []

    init(load: TraceLoad, slots: [[OTLPReceiver]], traces wanted: Range<Int> = 0..<Int.max) {
        var slotOfSpan: [UInt64: Int] = [:]
        var copies: [UInt64: Int] = [:]
        perSlot = Array(repeating: 0, count: slots.count)
        for (slot, receivers) in slots.enumerated() {
            for receiver in receivers {
                for (id, count) in receiver.spanIDCounts {
                    copies[id, default: 0] += count
                    slotOfSpan[id] = slot
                    perSlot[slot] += count
                }
            }
        }
        var slotsOfTrace: [Int: Set<Int>] = [:]
        for (span, trace) in load.spans where wanted.contains(trace) {
            guard let slot = slotOfSpan[span] else {
                missing += 1
                continue
            }
            slotsOfTrace[trace, default: []].insert(slot)
        }
        duplicated = copies.values.filter { $0 > 1 }.count
        traces = slotsOfTrace.count
        wholeTraces = slotsOfTrace.values.filter { $0.count == 1 }.count
    }

    var wholeFraction: Double { traces == 0 ? 0 : Double(wholeTraces) / Double(traces) }

    var description: String {
        "missing \(missing), duplicated \(duplicated), \(wholeTraces) of \(traces) traces whole "
            + "(\(String(format: "%.3f", wholeFraction * 100)) %), spans per collector \(perSlot)"
    }
}

@Suite struct CollectorPoolExporterTests {
    /// Real batches (two scopes; spans; log records in a trace and outside one) cut into parts by
    /// trace: every record in one part, each trace in one, the counts right — and the parts read
    /// by opentelemetry-proto, record by record against the original.
    @Test func splittingByTraceKeepsEveryRecordOnceUnderItsResourceAndScope() async throws {
        let recorder = RecordingExporter()
        var configuration = PipelineConfiguration(serviceName: "pool-split")
        configuration.traces.scheduleDelay = .seconds(30)
        configuration.logs.scheduleDelay = .seconds(30)
        let pipeline = try TelemetryPipeline(configuration: configuration, exporter: recorder)
        let tracers = [pipeline.tracer(scope: "split.a"), pipeline.tracer(scope: "split.b", version: "2")]
        let logger = pipeline.logger(scope: "split.logs")
        for trace in 0..<120 {
            let root = tracers[trace % 2].startSpan("root \(trace)")
            for child in 0..<(trace % 6) { tracers[(trace + child) % 2].startSpan("child", parent: root.context).end() }
            logger.emit(body: "in trace \(trace)", context: root.context)
            if trace % 3 == 0 { logger.emit(body: "outside any trace \(trace)") }
            root.end()
        }
        await pipeline.forceFlush()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spillway-split-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var checked: Set<TelemetrySignal> = []
        for batch in recorder.batches {
            let untraced: UInt64 = 0x5EED
            let parts = try TraceRouting.split(batch.body, signal: batch.signal, assign: { $0.map { Int($0 % 3) } }, untraced: untraced)
            #expect(parts.count == 3, "\(batch.recordCount) records over three collectors")
            #expect(parts.reduce(0) { $0 + $1.records } == batch.recordCount)
            var partOfTrace: [TraceID: Int] = [:]
            var total = 0
            for part in parts {
                let traces: [(TraceID, String)]
                if batch.signal == .traces {
                    traces = try OTLPDecoding.spans(from: part.body).map { ($0.traceID, $0.scopeName) }
                } else {
                    traces = try OTLPDecoding.logRecords(from: part.body).map { ($0.traceID, $0.scopeName) }
                }
                #expect(traces.count == part.records)
                total += traces.count
                for (trace, scope) in traces {
                    #expect(!scope.isEmpty, "the record keeps its scope")
                    let key = trace.isValid ? trace.high ^ trace.low : untraced
                    #expect(Int(key % 3) == part.collector, "the record is in its collector's part")
                    if trace.isValid { #expect(partOfTrace.updateValue(part.collector, forKey: trace) ?? part.collector == part.collector) }
                }
            }
            #expect(total == batch.recordCount)
            // opentelemetry-proto reads the parts, and compares them with the original.
            guard checked.insert(batch.signal).inserted else { continue }
            var paths = [dir.appendingPathComponent("\(batch.signal)-original.bin").path]
            try Data(batch.body).write(to: URL(fileURLWithPath: paths[0]))
            for part in parts {
                paths.append(dir.appendingPathComponent("\(batch.signal)-part-\(part.collector).bin").path)
                try Data(part.body).write(to: URL(fileURLWithPath: paths.last!))
            }
            let script = repositoryRoot.appendingPathComponent("Tests/conformance/check_split.py").path
            let (status, output) = try await runPython([script, "\(batch.signal)"] + paths)
            #expect(status == 0 && output.contains("0 mismatches, \(batch.recordCount) records in 3 parts"), "\(output)")
        }
        #expect(checked == [.traces, .logs])
        // A body that is not a request is refused, not cut.
        #expect(throws: ProtoDecodingError.self) {
            _ = try TraceRouting.split([0x0A, 0x05, 0x12], signal: .traces, assign: { $0.map { _ in 0 } }, untraced: 0)
        }
        _ = await pipeline.shutdown(deadline: .now + .seconds(5))
    }

    /// `make soak` runs this with `SPILLWAY_POOL_SPANS=1000000` and a 10 s outage of all three.
    static let loadSpans = Int(ProcessInfo.processInfo.environment["SPILLWAY_POOL_SPANS"] ?? "") ?? 60_000
    static let allDown = Duration.seconds(Int(ProcessInfo.processInfo.environment["SPILLWAY_POOL_OUTAGE_SECONDS"] ?? "") ?? 3)

    /// Three receivers in `balance-by-trace`: one dies mid-load and comes back on its port, then
    /// all three are down for a while. Counted by span id: nothing lost, nothing twice, and the
    /// traces land whole on one collector.
    @Test(.timeLimit(.minutes(10)))
    func balanceByTraceDeliversEverySpanOnceAndKeepsTracesWholeThroughOutages() async throws {
        var slots = [[OTLPReceiver]]()
        for _ in 0..<3 { slots.append([try await OTLPReceiver.start(retention: [], countIDs: true)]) }
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = try TelemetryPipeline(
            configuration: poolConfiguration(slots.map { $0[0].endpoint }, mode: .balanceByTrace, directory: directory))
        let load = TraceLoad()
        let third = Self.loadSpans / 3
        var emitted = load.emit(pipeline, spans: third)
        var liveTraces = 0  // traces emitted before the outage of all three (not spilled)
        func delivered() async -> Bool {
            await eventually(timeout: .seconds(60)) { pipeline.stats().spans.exported == emitted }
        }
        #expect(await delivered(), "\(pipeline.stats())")

        // One collector dies: its open connections reset, new ones are refused.
        let dying = slots[1][0]
        dying.behavior = .resetConnection
        try await dying.stop()
        emitted += load.emit(pipeline, spans: third)
        try await Task.sleep(for: .milliseconds(500))
        // It comes back on the same port: its share moves back once its probe succeeds.
        slots[1].append(try await OTLPReceiver.start(port: dying.port, retention: [], countIDs: true))
        // Its probe (an empty request) goes out with the next export: traffic keeps flowing meanwhile.
        let returned = slots[1][1]
        let back = await eventually(timeout: .seconds(20)) {
            emitted += load.emit(pipeline, spans: 40)
            return returned.uniqueSpanIDs > 0
        }
        #expect(back, "the returned collector gets its share again: \(pipeline.stats().collectors)")

        // All three down: what is emitted now spills, and is replayed when they are back.
        #expect(await delivered(), "what was sent live arrives first: \(pipeline.stats())")
        liveTraces = load.traces
        for slot in slots { slot.last!.behavior = .resetConnection }
        emitted += load.emit(pipeline, spans: Self.loadSpans - 2 * third)
        try await Task.sleep(for: Self.allDown)
        for slot in slots { slot.last!.behavior = .accept }

        let books = await eventually(timeout: .seconds(180)) {
            let s = pipeline.stats().spans
            return s.emitted == emitted && s.onDisk == 0 && s.pending == 0
        }
        let stats = pipeline.stats()
        #expect(books, "\(stats)")
        #expect(stats.spans.droppedTotal == 0, "\(stats.spans)")
        let arrivals = Arrivals(load: load, slots: slots)
        let live = Arrivals(load: load, slots: slots, traces: 0..<(liveTraces + 1))  // traces are numbered from 1
        let replayed = Arrivals(load: load, slots: slots, traces: (liveTraces + 1)..<Int.max)
        print(
            "pool balance-by-trace, \(emitted) spans: \(arrivals); spilled \(stats.spans.spilled), replayed \(stats.spans.replayed); "
                + "traces whole: \(live.wholeTraces) of \(live.traces) sent live, \(replayed.wholeTraces) of \(replayed.traces) replayed")
        #expect(arrivals.missing == 0 && arrivals.duplicated == 0, "\(arrivals)")
        // Live, a trace is cut only when its batches straddle a collector's failure or return: the
        // traces under way at the two changes, a handful whatever the run's size. The issue's
        // 99.9 % is for 1 M spans (`make soak`, ~95,000 traces: up to 95 cut); at this size
        // (~3,900 traces) 0.1 % is 3, and a loaded machine (more traces emitted while the
        // returned collector's probe is under way) was seen cutting 6: up to 10 here.
        #expect(live.traces - live.wholeTraces <= max(live.traces / 1000, 10), "\(live)")
        // Replayed after all three were down, traces are cut while the collectors come back one by one.
        #expect(replayed.wholeFraction >= 0.99, "\(replayed)")
        #expect(stats.spans.spilled > 0, "the outage of all three spilled: \(stats.spans)")
        for count in arrivals.perSlot { #expect(count > emitted / 10, "every collector takes a share: \(arrivals)") }
        await shutDownCheckingBooks(pipeline)
        for slot in slots { for receiver in slot { try? await receiver.stop() } }
    }

    /// Failover: all traffic on the first; when it fails, on the second; when its probe succeeds,
    /// back on the first. Twice, each with its own pipeline in the same process.
    @Test(.timeLimit(.minutes(3)))
    func failoverMovesToTheSecondCollectorAndBackToTheFirst() async throws {
        for round in 0..<2 {
            let first = try await OTLPReceiver.start(retention: [], countIDs: true)
            let second = try await OTLPReceiver.start(retention: [], countIDs: true)
            let pipeline = try TelemetryPipeline(
                configuration: poolConfiguration([first.endpoint, second.endpoint], mode: .failover, directory: nil))
            let load = TraceLoad()
            var emitted = load.emit(pipeline, spans: 2_000)
            #expect(await eventually(timeout: .seconds(20)) { first.uniqueSpanIDs == 2_000 }, "round \(round)")
            #expect(second.requestCount == 0, "round \(round): the second is idle while the first answers")

            first.behavior = .resetConnection
            emitted += load.emit(pipeline, spans: 2_000)
            #expect(await eventually(timeout: .seconds(20)) { second.uniqueSpanIDs == 2_000 }, "round \(round): on the second")
            #expect(pipeline.stats().circuitBreakerState == .closed, "round \(round): the pool is up while one collector is")
            #expect(
                await eventually { pipeline.stats().collectors.first?.circuitBreakerState == .open },
                "round \(round): \(pipeline.stats().collectors)")
            #expect(pipeline.health().reasons.contains(.collectorUnavailable), "round \(round): \(pipeline.health())")
            #expect(pipeline.stats().collectors.map(\.endpoint) == [first.endpoint, second.endpoint])

            first.behavior = .accept
            // The first's breaker is probed with an empty request once its cool-down is over.
            let back = await eventually(timeout: .seconds(20)) {
                emitted += load.emit(pipeline, spans: 20)
                return first.uniqueSpanIDs > 2_000
            }
            #expect(back, "round \(round): traffic is back on the first")
            let books = await eventually(timeout: .seconds(30)) {
                let s = pipeline.stats().spans
                return s.emitted == emitted && s.pending == 0
            }
            #expect(books, "round \(round): \(pipeline.stats().spans)")
            let arrivals = Arrivals(load: load, slots: [[first], [second]])
            #expect(arrivals.missing == 0 && arrivals.duplicated == 0, "round \(round): \(arrivals)")
            #expect(pipeline.stats().spans.droppedTotal == 0)
            await shutDownCheckingBooks(pipeline)
            try await first.stop()
            try await second.stop()
        }
    }

    /// A spilled frame is cut by trace when it is replayed over the pool: the part for a
    /// collector that refuses it for good (400) is dropped and counted while the other part is
    /// delivered, and neither is sent again.
    @Test(.timeLimit(.minutes(2)))
    func aReplayedFrameIsCutByTraceAndAPartRefusedForGoodDoesNotHoldBackTheOthers() async throws {
        let accepting = try await OTLPReceiver.start(retention: [], countIDs: true)
        let refusing = try await OTLPReceiver.start(retention: [], countIDs: true)
        accepting.behavior = .resetConnection
        refusing.behavior = .resetConnection
        let directory = spillDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let events = EventLog()
        var configuration = poolConfiguration([accepting.endpoint, refusing.endpoint], mode: .balanceByTrace, directory: directory)
        configuration.exportErrorHandler = events
        // A process whose collectors are both down spills everything and seals it at shutdown ...
        let writer = try TelemetryPipeline(configuration: configuration)
        let load = TraceLoad()
        let emitted = load.emit(writer, spans: 4_000)
        let written = await writer.shutdown(deadline: .now + .seconds(10)).stats.spans
        #expect(written.onDisk == emitted && written.droppedTotal == 0, "\(written)")
        // ... and the next one, both collectors answering from the start, replays it.
        accepting.behavior = .accept
        refusing.behavior = .fail(status: 400)
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let books = await eventually(timeout: .seconds(60)) {
            let s = pipeline.stats().spans
            return s.onDisk == 0 && s.pending == 0
        }
        let spans = pipeline.stats().spans
        #expect(books, "\(spans)")
        #expect(spans.recovered == emitted, "\(spans)")
        let refused = spans.dropped[.exportFailed] ?? 0
        #expect(refused > 0 && accepting.uniqueSpanIDs > 0, "both collectors had a share: \(spans)")
        #expect(accepting.uniqueSpanIDs + refused == emitted, "\(spans); delivered \(accepting.uniqueSpanIDs)")
        #expect(accepting.duplicateSpanIDs == 0 && spans.replayed == accepting.uniqueSpanIDs, "\(spans)")
        // The handler's events arrive on their own task, after the books: waited for.
        #expect(
            await eventually(timeout: .seconds(10)) { events.droppedByReason[.exportFailed] == refused },
            "the handler saw every refused record: \(events.droppedByReason[.exportFailed] ?? 0) of \(refused); \(pipeline.stats())")
        // Each trace went to its own collector: delivered whole, or refused whole.
        let delivered = accepting.spanIDCounts
        var spansOfTrace: [Int: (all: Int, delivered: Int)] = [:]
        for (span, trace) in load.spans {
            spansOfTrace[trace, default: (0, 0)].all += 1
            if delivered[span] != nil { spansOfTrace[trace, default: (0, 0)].delivered += 1 }
        }
        let cut = spansOfTrace.values.filter { $0.delivered > 0 && $0.delivered < $0.all }.count
        #expect(cut == 0, "\(cut) of \(spansOfTrace.count) traces were cut between the collectors")
        await shutDownCheckingBooks(pipeline)
        try await accepting.stop()
        try await refusing.stop()
    }

    /// Every collector down and no spill store: batches wait in memory, and the error that says
    /// so names the pool; nothing is lost once one collector is back.
    @Test(.timeLimit(.minutes(2)))
    func aPoolWithEveryCollectorDownHoldsBatchesUntilOneReturns() async throws {
        let a = try await OTLPReceiver.start(retention: [], countIDs: true)
        let b = try await OTLPReceiver.start(retention: [], countIDs: true)
        a.behavior = .resetConnection
        b.behavior = .fail(status: 503)
        let events = EventLog()
        var configuration = poolConfiguration([a.endpoint, b.endpoint], mode: .balanceByTrace, directory: nil)
        configuration.exportErrorHandler = events
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let load = TraceLoad()
        let emitted = load.emit(pipeline, spans: 3_000)
        #expect(await eventually(timeout: .seconds(20)) { pipeline.stats().circuitBreakerState == .open }, "\(pipeline.stats())")
        #expect(await eventually { events.all.contains { "\($0.error)".contains("collector \(b.endpoint)") } }, "errors name the collector")
        b.behavior = .accept
        let books = await eventually(timeout: .seconds(30)) {
            let s = pipeline.stats().spans
            return s.emitted == emitted && s.pending == 0
        }
        #expect(books, "\(pipeline.stats().spans)")
        let arrivals = Arrivals(load: load, slots: [[a], [b]])
        #expect(arrivals.missing == 0 && arrivals.duplicated == 0 && arrivals.wholeFraction == 1, "\(arrivals)")
        #expect(pipeline.stats().spans.droppedTotal == 0)
        await shutDownCheckingBooks(pipeline)
        try await a.stop()
        try await b.stop()
    }

    @Test func poolSettingsComeFromTheEnvironmentAndBadOnesNameTheirKey() throws {
        let configuration = try PipelineConfiguration.fromEnvironment([
            "SPILLWAY_EXPORTER_OTLP_POOL_ENDPOINTS": "http://gw-a:4318, http://gw-b:4318",
            "SPILLWAY_EXPORTER_OTLP_POOL_MODE": "balance-by-trace"
        ])
        let expected = CollectorPoolConfiguration(endpoints: ["http://gw-a:4318", "http://gw-b:4318"], mode: .balanceByTrace)
        #expect(configuration.exporter.pool == expected)
        func refusal(_ environment: [String: String]) -> ConfigurationError? {
            do {
                _ = try PipelineConfiguration.fromEnvironment(environment)
                return nil
            } catch {
                return error
            }
        }
        let endpoints = "SPILLWAY_EXPORTER_OTLP_POOL_ENDPOINTS"
        let mode = refusal([endpoints: "http://a:4318", "SPILLWAY_EXPORTER_OTLP_POOL_MODE": "round-robin"])
        #expect(mode?.key == "SPILLWAY_EXPORTER_OTLP_POOL_MODE", "\(String(describing: mode))")
        #expect(mode?.allowed == "failover, balance-by-trace", "\(String(describing: mode))")
        let twice = refusal([endpoints: "http://a:4318,http://a:4318"])
        #expect(twice?.key == endpoints, "\(String(describing: twice))")
        let foreign = refusal([endpoints: "http://a:4318,ftp://b"])
        #expect(foreign?.key == endpoints && foreign?.value == "ftp://b", "\(String(describing: foreign))")
        let empty = refusal([endpoints: "http://a:4318,,http://b:4318"])
        #expect(empty?.key == endpoints, "\(String(describing: empty))")
        let perSignal = refusal([endpoints: "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"])
        #expect(perSignal?.key == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "\(String(describing: perSignal))")
        let modeAlone = refusal(["SPILLWAY_EXPORTER_OTLP_POOL_MODE": "failover"])
        #expect(modeAlone?.key == "SPILLWAY_EXPORTER_OTLP_POOL_MODE", "\(String(describing: modeAlone))")
        var none = PipelineConfiguration()
        none.exporter.pool = CollectorPoolConfiguration(endpoints: [])
        #expect(throws: ConfigurationError.self) { _ = try TelemetryPipeline(configuration: none) }
    }

    /// The pool's endpoints and mode need a restart; the rest of the exporter's settings stay live.
    @Test func reconfigureKeepsThePoolAndRefusesToChangeIt() async throws {
        let configuration = poolConfiguration(["http://127.0.0.1:9", "http://127.0.0.1:10"], mode: .failover, directory: nil)
        let pipeline = try TelemetryPipeline(configuration: configuration)
        var headers = configuration
        headers.exporter.headers = ["x-tenant": "a"]
        try await pipeline.reconfigure(headers)
        var moved = headers
        moved.exporter.pool?.endpoints.append("http://127.0.0.1:11")
        await #expect(throws: ConfigurationError.self) { try await pipeline.reconfigure(moved) }
        var mode = headers
        mode.exporter.pool?.mode = .balanceByTrace
        do {
            try await pipeline.reconfigure(mode)
            Issue.record("a new pool mode needs a restart")
        } catch {
            #expect(error.key.contains("exporter.pool.mode"), "\(error)")
        }
        _ = await pipeline.shutdown(deadline: .now + .seconds(2))
    }
}
