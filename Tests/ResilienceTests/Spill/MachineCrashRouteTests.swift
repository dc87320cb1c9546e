import Foundation
import Glibc
import Resilience
import ResilienceTesting
import Testing

/// `ExportRoute.Durability.machineCrash`: an emit returns once its record is on the disk (a group
/// commit of the ring file), and what was synced is read back even after a reboot.
@Suite struct MachineCrashRouteTests {
    /// 8 threads emit on a `machineCrash(2 ms)` route while the collector takes 300 ms per request (so
    /// nothing is released before it is synced). Every emit returns `.queued`, and the sync trace
    /// shows each one's record inside a range that was synced before the emit returned; one sync
    /// serves many records.
    @Test(.timeLimit(.minutes(2)))
    func everyAcknowledgedRecordIsInsideASyncedRange() async throws {
        setenv("SPILLWAY_TEST_SYNC_TRACE", "1", 1)
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        receiver.behavior = .delay(.milliseconds(300))
        let directory = TestDirectory.make("machine-crash")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = PipelineConfiguration(serviceName: "audit")
        configuration.exporter.endpoint = receiver.endpoint
        configuration.spill = SpillConfiguration(directory: directory, durability: .always, io: testIO)
        configuration.traces.scheduleDelay = .milliseconds(20)
        configuration.selfMetrics = false
        configuration.routes = [ExportRoute("audit", scopes: ["audit"], durability: .machineCrash(window: .milliseconds(2)))]
        let pipeline = try TelemetryPipeline(configuration: configuration)
        let tracer = pipeline.tracer(scope: "audit")
        let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
            for thread in 0..<8 {
                group.addTask {
                    try await blockingCall {
                        var accepted = 0
                        for i in 0..<1_000 {
                            let span = tracer.startSpan("audit")
                            span.setAttribute("spillway.load.seq", thread * 1_000 + i)
                            if case .queued = span.end() { accepted += 1 }
                        }
                        return accepted
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(accepted == 8_000)
        let trace = try #require(pipeline.ringSyncTrace)
        #expect(trace.waits.count == 8_000 && trace.waits.allSatisfy(\.synced), "\(trace.waits.count) waits, \(trace.syncs) syncs")
        // The ranges follow each other; each wait's record ends inside one of them.
        for (a, b) in zip(trace.ranges, trace.ranges.dropFirst()) { #expect(a.to <= b.from || b.from == b.to, "\(a) \(b)") }
        let uncovered = trace.waits.filter { wait in !trace.ranges.contains { $0.from < wait.end && wait.end <= $0.to } }
        #expect(uncovered.isEmpty, "\(uncovered.count) acknowledged records outside every synced range: \(uncovered.prefix(3))")
        #expect(trace.syncs < 8_000 / 4, "a group commit: \(trace.syncs) syncs for 8,000 records")
        let books = await eventually(timeout: .seconds(60)) { pipeline.stats().spans.exported == 8_000 }
        #expect(books, "\(pipeline.stats())")
        #expect(receiver.sequenceReport(expected: 8_000).missing == 0)
        _ = await pipeline.shutdown(deadline: .now + .seconds(10))
        try await receiver.stop()
    }

    @Test func machineCrashNeedsASpillDirectoryAndAWindow() throws {
        var configuration = PipelineConfiguration()
        configuration.routes = [ExportRoute("audit", scopes: ["audit"], durability: .machineCrash())]
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        configuration.spill = SpillConfiguration(directory: "/tmp/x")
        try configuration.validate()
        configuration.routes[0].durability = .machineCrash(window: .zero)
        let error = #expect(throws: ConfigurationError.self) { try configuration.validate() }
        #expect(error?.key == "routes[0].durability")
        #expect(
            ExportRoute.Durability(parsing: "machine_crash:5ms:250ms")
                == .machineCrash(window: .milliseconds(5), timeout: .milliseconds(250)))
        #expect(ExportRoute.Durability(parsing: "machine_crash") == .machineCrash())
        #expect(ExportRoute.Durability(parsing: "machine_crash:soon") == nil)
        #expect("\(ExportRoute.Durability.machineCrash(window: .microseconds(500)))" == "machine_crash:500us")
    }

    /// A `spillway load` on a `machineCrash` route, killed; the next start is "after a reboot"
    /// (another boot id): only what was synced is read, and it holds every acknowledged record.
    /// The same on a `processCrash` route: its ring file is set aside as stale.
    @Test(.timeLimit(.minutes(3)))
    func afterARebootTheSyncedRecordsOfAMachineCrashRouteAreSent() async throws {
        for durability in ["machine_crash:2ms", "process_crash"] {
            let directory = FileToolTests.temporaryDirectory() + "/spill"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let (acked, _) = try await FileToolTests.killedLoad(
                [
                    "--endpoint", "http://127.0.0.1:9", "--spans", "10000000", "--rate", "40000", "--spill-dir", directory,
                    "--route-durability", durability
                ], threads: 2, environment: ["SPILLWAY_TEST_BOOT_ID": "boot-before"], killAfter: .milliseconds(1_500))
            #expect(acked.allSatisfy { $0 > 100 }, "\(durability): \(acked)")
            let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
            let recover = try await FileToolTests.run(
                ["recover", directory, "--endpoint", receiver.endpoint, "--quiet"], environment: ["SPILLWAY_TEST_BOOT_ID": "boot-after"])
            let counts = receiver.sequenceCounts(signal: .traces)
            var missing = 0
            for t in 0..<2 where acked[t] >= 0 {
                for seq in stride(from: t, through: acked[t], by: 2) where seq >= counts.count || counts[seq] == 0 { missing += 1 }
            }
            if durability == "process_crash" {
                #expect(recover.output.contains("before the machine restarted"), "\(recover.output)")
                let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                #expect(names.contains { $0.hasPrefix("ring.") && $0.hasSuffix(".stale") }, "\(names)")
            } else {
                #expect(recover.status == 0 && missing == 0, "\(durability): \(missing) acknowledged missing; \(recover.output)")
                #expect(recover.output.contains("from the ring file"), "\(recover.output)")
            }
            try await receiver.stop()
        }
    }
}
