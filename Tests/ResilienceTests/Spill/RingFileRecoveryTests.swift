import Foundation
import Glibc
import Resilience
import ResilienceTesting
import Synchronization
import Testing

private func configuration(_ receiver: OTLPReceiver, directory: String) -> PipelineConfiguration {
    var configuration = PipelineConfiguration(serviceName: "ring-recovery")
    configuration.exporter.endpoint = receiver.endpoint
    configuration.traces.scheduleDelay = .milliseconds(50)
    configuration.logs.scheduleDelay = .milliseconds(50)
    configuration.spill = SpillConfiguration(directory: directory, durability: .none, io: testIO)
    configuration.overflowPolicy = .block(upTo: .seconds(30))
    configuration.selfMetrics = false
    return configuration
}

/// The file-backed ring as a user meets it: a service killed with SIGKILL (a `spillway load`
/// child), and the next pipeline on its spill directory; ring files that are not to be trusted.
@Suite struct RingFileRecoveryTests {
    /// A load killed while its collector is down leaves records in the ring file and in spill
    /// segments; a pipeline started on the directory sends every record whose emit returned before
    /// the kill, with its instrumentation scope, then removes the ring file. Twice in one process.
    @Test(.timeLimit(.minutes(4)))
    func theNextPipelineSendsWhatAKilledProcessLeftInItsRingFile() async throws {
        for round in 0..<2 {
            let directory = FileToolTests.temporaryDirectory() + "/spill"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            // A collector that never answers in time: batches stay in flight, so the ring holds them at the kill.
            let hanging = try await OTLPReceiver.start(retention: [], countIDs: false)
            hanging.behavior = .delay(.seconds(60))
            let (acks, killed) = try await FileToolTests.killedLoad(
                ["--endpoint", hanging.endpoint, "--spans", "10000000", "--rate", "40000", "--spill-dir", directory], threads: 1,
                environment: ["SPILLWAY_OVERFLOW": "block:30000"], killAfter: .milliseconds(1_500))
            let acked = acks[0]
            #expect(killed && acked > 1_000, "round \(round): acked \(acked)")
            let inspect = try await FileToolTests.run(["inspect", directory])
            #expect(inspect.output.contains("left in the ring file:"), "round \(round): \(inspect.output)")

            let receiver = try await OTLPReceiver.start(retention: .records, countIDs: true)
            let pipeline = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
            let ring = try #require(pipeline.stats().ringFile)
            #expect(ring.generation == 2 && ring.recoveredSpans > 0 && ring.setAside == nil, "round \(round): \(ring)")
            let books = await eventually(timeout: .seconds(90)) {
                let s = pipeline.stats()
                return s.spans.onDisk == 0 && s.spans.pending == 0 && s.ringBytesInUse == 0
            }
            let stats = pipeline.stats().spans
            #expect(books && stats.droppedTotal == 0 && stats.recovered >= ring.recoveredSpans, "round \(round): \(stats)")
            expectBooksBalance(pipeline)
            let counts = receiver.sequenceCounts(signal: .traces)
            let missing = (0...acked).filter { $0 >= counts.count || counts[$0] == 0 }
            #expect(missing.isEmpty, "round \(round): \(missing.count) acknowledged spans missing, the first \(missing.prefix(5))")
            let scopes = Set(receiver.spans.map(\.scopeName))
            #expect(scopes == ["spillway.load"], "the scope of recovered records comes from the journal: \(scopes)")
            _ = await pipeline.shutdown(deadline: .now + .seconds(10))
            #expect(!FileManager.default.fileExists(atPath: directory + "/ring"), "everything was released: the ring file goes")
            try await receiver.stop()
            try await hanging.stop()
        }
    }

    /// A file named `ring` that is not a ring file this version can read is renamed aside (never
    /// read as records, never deleted), reported, and a new ring file takes its place.
    @Test(arguments: ["text", "zeroed"])
    func aRingFileThatDoesNotCheckOutIsSetAsideAndTheServiceRuns(_ kind: String) async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        let directory = TestDirectory.make("ring-aside")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let original = kind == "text" ? Data("service=checkout\nreplicas=3\n".utf8) : Data(count: 4096 + (32 << 20))
        try original.write(to: URL(fileURLWithPath: directory + "/ring"))
        let pipeline = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
        let aside = try #require(pipeline.stats().ringFile?.setAside)
        #expect(aside.contains("not a ring file this version can read"), "\(aside)")
        let path = String(aside.prefix { $0 != " " })
        #expect(path.hasPrefix(directory + "/ring.") && path.hasSuffix(".damaged"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == original, "set aside as it was")
        let tracer = pipeline.tracer(scope: "aside")
        for i in 0..<1_000 {
            let span = tracer.startSpan("s")
            span.setAttribute("spillway.load.seq", i)
            span.end()
        }
        let books = await eventually(timeout: .seconds(30)) { pipeline.stats().spans.exported == 1_000 }
        #expect(books, "\(pipeline.stats())")
        _ = await pipeline.shutdown(deadline: .now + .seconds(10))
        #expect(receiver.sequenceReport(expected: 1_000).missing == 0)
        #expect(FileManager.default.fileExists(atPath: path), "a file set aside is the operator's to delete")
        try await receiver.stop()
    }

    /// Two pipelines one after the other on one directory: the first removes its ring file at a
    /// clean shutdown, so the second starts a new one and recovers nothing.
    @Test func aCleanShutdownLeavesNoRingFileForTheNextPipeline() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        let directory = TestDirectory.make("ring-clean")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for round in 0..<2 {
            let pipeline = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
            let ring = try #require(pipeline.stats().ringFile)
            #expect(ring.generation == 1 && ring.recoveredSpans == 0 && ring.capacity == 32 << 20, "round \(round): \(ring)")
            #expect(FileManager.default.fileExists(atPath: directory + "/ring"))
            let logger = pipeline.logger(scope: "clean")
            for i in 0..<500 { logger.emit(severity: .info, body: "r") { $0.set("spillway.load.seq", round * 500 + i) } }
            let summary = await pipeline.shutdown(deadline: .now + .seconds(10))
            #expect(summary.stats.logs.exported == 500 && summary.stats.logs.recovered == 0, "round \(round): \(summary.stats.logs)")
            #expect(!FileManager.default.fileExists(atPath: directory + "/ring"))
            #expect(!FileManager.default.fileExists(atPath: directory + "/ring.names"))
        }
        let report = receiver.sequenceReport(expected: 1_000, signal: .logs)
        #expect(report.missing == 0 && report.duplicates == 0, "\(report)")
        try await receiver.stop()
    }

    /// A collector that takes 2 s per request: batches in flight would hold the ring's oldest space
    /// for 2 s each while the ring fills behind them; they are relocated instead, and every record
    /// arrives once.
    @Test(.timeLimit(.minutes(3)))
    func batchesInFlightAreRelocatedSoASlowCollectorDoesNotPinTheRing() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        receiver.behavior = .delay(.seconds(2))
        let directory = TestDirectory.make("ring-relocate")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var slow = configuration(receiver, directory: directory)
        slow.ringCapacity = 1 << 20
        slow.traces.maxBytesInFlight = 256 << 10
        slow.logs.maxBytesInFlight = 256 << 10
        slow.traces.maxExportBatchSize = 256
        slow.traces.adaptiveConcurrency = false
        slow.traces.maxConcurrentExports = 4
        let pipeline = try TelemetryPipeline(configuration: slow)
        #expect(pipeline.stats().ringFile?.capacity == 2 << 20)
        let tracer = pipeline.tracer(scope: "relocate")
        for burst in 0..<40 {
            for i in burst * 500..<(burst + 1) * 500 {
                let span = tracer.startSpan("s")
                span.setAttribute("spillway.load.seq", i)
                span.end()
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        receiver.behavior = .accept
        let books = await eventually(timeout: .seconds(90)) {
            let s = pipeline.stats().spans
            return s.emitted == 20_000 && s.onDisk == 0 && s.pending == 0
        }
        let stats = pipeline.stats()
        #expect(books && stats.spans.droppedTotal == 0, "\(stats)")
        #expect((stats.ringFile?.relocatedRequests ?? 0) > 0, "\(String(describing: stats.ringFile))")
        let report = receiver.sequenceReport(expected: 20_000)
        #expect(report.missing == 0 && report.duplicates == 0, "\(report)")
        _ = await pipeline.shutdown(deadline: .now + .seconds(10))
        try await receiver.stop()
    }

    /// An exporter deaf to cancellation still holds two batches when shutdown's grace ends: their
    /// requests move to the ring's tail, so the ring file left behind holds only them, not the
    /// spilled records behind them. The next pipeline sends every span once, and the first one's
    /// exports that end afterwards free nothing in the file the second one has open.
    @Test(.timeLimit(.minutes(3)))
    func exportsThatOutliveShutdownLeaveOnlyTheirOwnRequestsInTheRingFile() async throws {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        let directory = TestDirectory.make("ring-deaf")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let deaf = DeafExporter()
        var held = configuration(receiver, directory: directory)
        held.traces.maxExportBatchSize = 500
        held.traces.adaptiveConcurrency = false
        held.traces.maxConcurrentExports = 2
        let first = try TelemetryPipeline(configuration: held, exporter: deaf)
        let tracer = first.tracer(scope: "deaf")
        for i in 0..<3_000 {
            let span = tracer.startSpan("s")
            span.setAttribute("spillway.load.seq", i)
            span.end()
        }
        #expect(await eventually(timeout: .seconds(30)) { deaf.held == 1_000 }, "\(first.stats())")
        let summary = await first.shutdown(deadline: .now + .milliseconds(200))
        let spans = summary.stats.spans
        #expect(spans.onDisk == 2_000 && spans.pending == 1_000 && spans.droppedTotal == 0, "\(summary.stats)")
        #expect(summary.stats.ringFile?.relocatedRequests == 2, "\(String(describing: summary.stats.ringFile))")
        #expect(FileManager.default.fileExists(atPath: directory + "/ring"))

        let second = try TelemetryPipeline(configuration: configuration(receiver, directory: directory))
        #expect(second.stats().ringFile?.recoveredSpans == 1_000, "\(String(describing: second.stats().ringFile))")
        deaf.release()
        #expect(await eventually(timeout: .seconds(30)) { deaf.held == 0 })
        let books = await eventually(timeout: .seconds(60)) {
            let s = second.stats()
            return s.spans.exported == 3_000 && s.spans.onDisk == 0 && s.spans.pending == 0 && s.ringBytesInUse == 0
        }
        #expect(books, "\(second.stats())")
        let report = receiver.sequenceReport(expected: 3_000)
        #expect(report.missing == 0 && report.duplicates == 0, "\(report)")
        _ = await second.shutdown(deadline: .now + .seconds(10))
        #expect(!FileManager.default.fileExists(atPath: directory + "/ring"))
        try await receiver.stop()
    }
}

/// Holds every batch until ``release()``, deaf to cancellation (as an exporter blocked in a call
/// that cannot be interrupted), then accepts it without sending it anywhere.
private final class DeafExporter: TelemetryExporter {
    let name = "deaf"
    private let state = Mutex<(held: Int, released: Bool, waiting: [CheckedContinuation<Void, Never>])>((0, false, []))

    var held: Int { state.withLock { $0.held } }

    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        state.withLock { $0.held += batch.recordCount }
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if !state.released { state.waiting.append(continuation) }
                return state.released
            }
            if now { continuation.resume() }
        }
        state.withLock { $0.held -= batch.recordCount }
        return ExportResponse()
    }

    func release() {
        for continuation in state.withLock({ state in
            state.released = true
            defer { state.waiting = [] }
            return state.waiting
        }) { continuation.resume() }
    }
}
