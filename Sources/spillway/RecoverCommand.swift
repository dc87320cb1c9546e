import ArgumentParser
import Foundation
import Resilience

/// `spillway recover DIR`: what a process that died left in its spill directory — the records in
/// its ring file and its spill segments — sent to the collector by a pipeline on the directory,
/// which deletes only what the collector acknowledged.
struct Recover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send what a process that died left in a spill directory (ring file and spill segments), then delete it.",
        discussion: """
            Starts a pipeline on DIR, as the service would: it sends the records committed to the ring file and not \
            delivered (claims a producer never committed are skipped and counted), replays the spill segments, and \
            deletes each only when the collector acknowledged it. Reads the OTEL_* and SPILLWAY_* environment like the \
            library. Exit status: 0 when nothing is left; 1 when something is left (the collector did not take it before \
            --timeout), a ring file could not be read (it is set aside), DIR is not a spill directory, or a running process \
            holds it; 64 a usage error.
            """)

    @Argument(help: "The spill directory a process left.") var directory: String
    @Option(help: "OTLP/HTTP base URL (default: OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4318).") var endpoint: String?
    @Option(parsing: .unconditional, help: "Seconds to wait for the collector to take everything.") var timeout = 300
    @Flag(help: "No progress line.") var quiet = false

    func validate() throws {
        guard (1...86_400).contains(timeout) else { throw ValidationError("--timeout: seconds from 1 to 86400, got \(timeout)") }
    }

    func run() async throws {
        let path = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        guard SpillLayout.isDirectory(path) else {
            printError("recover: \(directory): \(SpillLayout.exists(path) ? "not a directory" : "no such directory")")
            throw ExitCode(1)
        }
        let names = SpillLayout.list(path)
        guard
            names.contains("ring") || names.contains(SpillLayout.lockFileName)
                || names.contains(where: { TelemetrySignal(named: $0) != nil })
        else {
            printError("recover: \(directory): not a spill directory (no ring file, spillway.lock, traces/, logs/ or metrics/)")
            throw ExitCode(1)
        }
        let lock = SpillDirectoryLock.isHeld(spillDirectory: path)
        if lock.held {
            printError(
                "recover: \(directory) is in use by \(lock.holder.map { "process \($0)" } ?? "another process"); nothing was touched")
            throw ExitCode(1)
        }
        do {
            if let ring = try RingFile.inspect(directory: path) {
                print(
                    "ring file: \(grouped(ring.spans)) spans, \(grouped(ring.logRecords)) log records to send"
                        + (ring.skippedRecords > 0 ? "; \(ring.skippedRecords) claimed and never committed (skipped)" : "")
                        + (ring.isStale ? " — written before the machine restarted: it will be set aside, not sent" : ""))
            }
        } catch {
            print("ring file: \(error.message); it will be set aside, not sent")
        }
        let events = EventTally()
        let pipeline: TelemetryPipeline
        do {
            var configuration = try loadConfiguration(endpoint: endpoint, spillDirectory: path, events: events)
            configuration.selfMetrics = false
            pipeline = try TelemetryPipeline(configuration: configuration)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        let start = ContinuousClock.now
        let deadline = start + .seconds(timeout)
        func left(_ stats: PipelineStats) -> Int {
            [stats.spans, stats.logs, stats.metrics].reduce(0) { $0 + $1.onDisk + $1.pending } + (stats.ringBytesInUse > 0 ? 1 : 0)
        }
        while ContinuousClock.now < deadline {
            let stats = pipeline.stats()
            if left(stats) == 0 { break }
            if !quiet {
                printError("\r" + waitingStatus(stats) + "; on disk: \(stats.spans.onDisk + stats.logs.onDisk)    ", terminator: "")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        if !quiet { printError("") }
        let summary = await pipeline.shutdown(deadline: .now + .seconds(30))
        let stats = summary.stats
        let ring = stats.ringFile
        print(
            "sent:     \(grouped(stats.spans.exported)) spans, \(grouped(stats.logs.exported)) log records, "
                + "\(grouped(stats.metrics.exported)) metric points in \(String(format: "%.1f", seconds(ContinuousClock.now - start))) s")
        if let ring {
            print(
                "          from the ring file: \(grouped(ring.recoveredSpans)) spans, \(grouped(ring.recoveredLogRecords)) log records"
                    + (ring.skippedRecords + ring.skippedBytes > 0
                        ? "; skipped \(ring.skippedRecords) records never committed, \(ring.skippedBytes) bytes" : ""))
            if let aside = ring.setAside { print("          an unreadable ring file was moved to \(aside)") }
        }
        print("          replayed from disk: \(grouped(stats.spans.replayed + stats.logs.replayed + stats.metrics.replayed))")
        let dropped = stats.spans.droppedTotal + stats.logs.droppedTotal + stats.metrics.droppedTotal
        if dropped > 0 { print("dropped:  \(grouped(dropped)) (\(events.summary))") }
        let lines = leftBehind(in: [path])
        for line in lines { print(line) }
        // A ring file set aside is a data problem too: its records were not sent.
        if !lines.isEmpty || dropped > 0 || ring?.setAside != nil { throw ExitCode(1) }
    }
}
