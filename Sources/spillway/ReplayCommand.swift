import ArgumentParser
import Foundation
import Resilience

struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send spill segments to a collector; delete what it acknowledged.",
        discussion: """
            Reads the spilled area of a spill directory (with --rejected: its rejected and refused areas). \
            Takes the directory's lock: refuses while a pipeline holds it (--force replays the sealed segments anyway; \
            segments being written are skipped even then), and recovers .open segments left by a crash, as the library does. \
            Each frame goes through retries and a circuit breaker; progress is kept in <sequence>.progress, so a rerun \
            resumes where this one stopped and never re-sends what was acknowledged. A frame whose data the collector \
            refuses (400) is copied to refused/ and not sent again; a misconfiguration (401, 403, 404, …) stops the \
            replay and changes nothing. Damage is skipped and counted, and its segment kept as .damaged once its intact \
            frames went out. Without an acknowledgement for --give-up-after seconds, replay stops and leaves everything \
            not acknowledged on disk. Exit status: 0 when everything was delivered; 1 when anything is left, damaged, \
            refused or not a segment.
            """)

    @Argument(help: "Spill directories, signal directories, or segment files.") var paths: [String]
    @Option(help: "OTLP/HTTP base URL (default: OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4318).") var endpoint: String?
    @Option(parsing: .unconditional, help: "Stop after this many seconds without an acknowledgement, leaving the rest on disk.")
    var giveUpAfter: Int = 60
    @Flag(help: "Replay the rejected and refused areas of a spill directory instead of the spilled one.") var rejected = false
    @Flag(help: "Replay even while a process holds the directory's lock (its open segments are skipped).") var force = false
    @Flag(help: "Send copies: write no progress, delete nothing.") var keep = false
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        guard giveUpAfter >= 1 && giveUpAfter <= 86_400 else {
            throw ValidationError("--give-up-after: seconds from 1 to 86400, got \(giveUpAfter)")
        }
    }

    func run() async throws {
        let found: SpillPaths
        do {
            found = try SpillPaths.resolve(paths, areas: rejected ? [.rejected, .refused] : [.spilled])
        } catch {
            printError("replay: \(error)")
            throw ExitCode(1)
        }
        for (path, reason) in found.foreign { printError("replay: \(path): \(reason); left alone") }
        for part in found.destinationParts {
            printError(
                "replay: \(part) is a destination's part of the store, left alone: replay it by its path to that destination's collector")
        }

        // The directories' locks: a running pipeline writes there.
        var locks: [SpillDirectoryLock] = []
        var locked: Set<String> = []
        for directory in found.spillDirectories {
            let (held, holder) = SpillDirectoryLock.isHeld(spillDirectory: directory)
            if held {
                let who = holder.map { "process \($0)" } ?? "another process"
                guard force else {
                    printError(
                        "replay: \(directory) is being written by \(who) (\(SpillLayout.lockFileName)); stop it first, or pass "
                            + "--force to replay its sealed segments anyway"
                    )
                    throw ExitCode(1)
                }
                printError("replay: \(directory) is held by \(who); --force: replaying its sealed segments, skipping those being written")
                continue
            }
            do {
                locks.append(try SpillDirectoryLock(spillDirectory: directory))
                locked.insert(directory)
            } catch {
                printError("replay: cannot lock \(directory): \(error)")
                throw ExitCode(1)
            }
        }
        defer { _ = locks }

        // Segments left .open by a crash are recovered as the library does at start.
        var segments: [SegmentLocation] = []
        for var location in found.segments {
            if location.isQuarantined { continue }
            if location.isOpen {
                guard let directory = location.spillDirectory, locked.contains(directory) else {
                    printError("replay: \(location.path) is being written (or its directory is not locked); skipped")
                    continue
                }
                do {
                    let recovery = try recoverSegment(path: location.path)
                    if recovery.removed {
                        printError("replay: \(location.path) was cut inside its header (nothing in it was durable); removed")
                        continue
                    }
                    printError(
                        "replay: recovered \(location.path) left by a crash: \(grouped(recovery.records)) records kept, "
                            + "\(recovery.truncatedBytes) torn bytes cut"
                    )
                    location.path = String(location.path.dropLast(".open".count)) + ".spill"
                } catch {
                    printError("replay: cannot recover \(error); left as it is")
                    continue
                }
            }
            segments.append(location)
        }

        var configuration = try PipelineConfiguration.fromEnvironment().exporter
        if let endpoint { configuration.endpoint = endpoint }
        let transport: any TelemetryExporter
        do { transport = try makeOTLPExporter(configuration) } catch { throw ValidationError(error.description) }
        let session = ReplaySession(
            transport: transport, giveUpAfter: .seconds(giveUpAfter), keep: keep, showProgress: !quiet,
            total: segments.reduce(0) { $0 + remainingRecords($1) })
        for location in segments {
            guard await session.replay(location) else { break }
        }
        await transport.shutdown()
        session.finishProgress()
        print(session.summary(segments: segments.count))
        for line in leftBehind(in: found.spillDirectories) { print(line) }
        if !found.foreign.isEmpty || !session.isComplete { throw ExitCode(1) }
    }

    private func remainingRecords(_ location: SegmentLocation) -> Int {
        guard let reader = try? SegmentReader(path: location.path, headersOnly: true) else { return 0 }
        var records = 0
        while let entry = reader.next() { if case .frame(let frame) = entry { records += frame.records } }
        return max(0, records - (keep ? 0 : SegmentProgress.read(location.progressPath).records))
    }
}

/// One run of `spillway replay`: the chain, the books, the copies of refused requests.
final class ReplaySession {
    private let transport: any TelemetryExporter
    private let chain: any TelemetryExporter
    private let giveUpAfter: Duration
    private let keep: Bool
    private let showProgress: Bool
    private let total: Int
    private let start = ContinuousClock.now
    private var lastAcknowledged = ContinuousClock.now
    private var lastDrawn: ContinuousClock.Instant?
    private var refusedWriters: [String: SegmentWriter] = [:]

    private(set) var delivered = 0
    private var damagedKnown = 0
    private var damagedUnknown = 0
    private var refusedCopied = 0
    private var refusedLeft = 0
    private var deleted = 0
    private var quarantined = 0
    private var leftSegments: [String] = []
    private var stopReason: String?

    init(transport: any TelemetryExporter, giveUpAfter: Duration, keep: Bool, showProgress: Bool, total: Int) {
        self.transport = transport
        // The library's chain: retries by the OTLP rules, and a breaker that stops hammering a
        // collector that is down (a probe per cool-down).
        self.chain = ExporterChain.standard(
            wrapping: transport, retry: ExportRetryPolicy(maximumElapsedTime: min(giveUpAfter, .seconds(10))),
            circuitBreaker: CircuitBreakerPolicy(), measured: false)
        self.giveUpAfter = giveUpAfter
        self.keep = keep
        self.showProgress = showProgress
        self.total = total
    }

    var isComplete: Bool {
        stopReason == nil && leftSegments.isEmpty && damagedKnown + damagedUnknown == 0 && refusedCopied + refusedLeft == 0
    }

    /// Replays one segment; `false` when the whole replay stops (gave up, misconfigured).
    func replay(_ location: SegmentLocation) async -> Bool {
        let cursor: SegmentCursor
        do {
            cursor = try SegmentCursor(
                path: location.path, progress: keep ? SegmentProgress() : SegmentProgress.read(location.progressPath))
        } catch {
            printError("replay: \(error); left alone")
            leftSegments.append(location.path)
            return true
        }
        let signal = cursor.reader.signal
        if let fromPath = location.signalFromPath, fromPath != signal {
            printError("replay: \(location.path) is in a \(fromPath) directory, but its header says \(signal): sent as \(signal)")
        }
        var segmentComplete = true
        // One frame in flight at a time, in file order; the next frame is read (decompressed,
        // checked) while the current one is in flight, and sent as soon as the current one is
        // acknowledged — before its progress is written. A frame is sent only after every frame
        // ahead of it was acknowledged or refused, so a stop leaves nothing delivered behind it.
        var upcoming = cursor.next()
        var sending = upcoming.flatMap(start)
        entries: while let entry = upcoming {
            let following = cursor.next()
            let outcome = await sending?.value
            switch (entry, outcome) {
            case (.damaged(let damage), _):
                if let records = damage.records { damagedKnown += records } else { damagedUnknown += 1 }
                printError(
                    "\nreplay: \(location.path)@\(damage.offset): \(damage.reason); \(describeLost(damage.records)) lost, kept in the file")
                sending = following.flatMap(start)
            case (.frame(let batch, let offset), let sent?):
                lastAcknowledged = max(lastAcknowledged, sent.lastAcknowledged)
                switch sent.outcome {
                case .delivered(let rejected, let message):
                    sending = following.flatMap(start)
                    delivered += batch.recordCount - rejected
                    if rejected > 0 {
                        refusedCopied += rejected
                        copyRefused(
                            batch, location: location, status: nil,
                            message: "partial success: \(rejected) of \(batch.recordCount) rejected: \(message)")
                    }
                case .refused(let status, let message):
                    if location.area == .refused {
                        // A copy that is refused again stays where it is: it was never acknowledged.
                        refusedLeft += batch.recordCount
                        printError("\nreplay: \(location.path)@\(offset): refused again (\(message)); left in place")
                        segmentComplete = false
                        break entries
                    }
                    sending = following.flatMap(start)
                    refusedCopied += batch.recordCount
                    copyRefused(batch, location: location, status: status, message: message)
                case .stop(let reason):
                    stopReason = reason
                    segmentComplete = false
                    break entries
                }
            case (.frame, nil):
                segmentComplete = false  // cannot happen: a frame always has a send
                break entries
            }
            cursor.done(entry)
            if !keep { cursor.progress.write(location.progressPath) }
            drawProgress()
            upcoming = following
        }
        guard segmentComplete else {
            leftSegments.append(location.path)
            return stopReason == nil
        }
        if !keep {
            if cursor.progress.damaged > 0 {
                // Its intact frames went out; its damage is kept for inspection.
                rename(location.path, String(location.path.dropLast(".spill".count)) + ".damaged")
                quarantined += 1
            } else {
                unlink(location.path)
                unlink(location.rejectionsPath)
                deleted += 1
            }
            unlink(location.progressPath)
        }
        return true
    }

    /// Starts sending the frame of `entry` (`nil` for damage: nothing to send).
    private func start(_ entry: SegmentCursor.Entry) -> Task<FrameSender.Sent, Never>? {
        let batch: ExportBatch
        switch entry {
        case .frame(let frame, _): batch = frame
        case .damaged: return nil
        }
        let chain = self.chain
        let giveUpAfter = self.giveUpAfter
        let showProgress = self.showProgress
        let since = lastAcknowledged
        return Task {
            await FrameSender.send(batch, chain: chain, giveUpAfter: giveUpAfter, showProgress: showProgress, lastAcknowledged: since)
        }
    }

    /// Copies a refused request to `<spill dir>/refused/<signal>/` with the collector's answer.
    private func copyRefused(_ batch: ExportBatch, location: SegmentLocation, status: Int?, message: String) {
        let spillDirectory = location.spillDirectory ?? (location.path as NSString).deletingLastPathComponent
        let directory = SpillLayout.directory(spillDirectory, .refused, batch.signal)
        guard !keep else { return }
        do {
            let writer =
                try refusedWriters[directory]
                ?? {
                    try FileManager.default.createDirectory(
                        atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                    let next = (SpillLayout.list(directory).compactMap { SpillLayout.parse($0)?.sequence }.max() ?? 0) + 1
                    return try SegmentWriter(
                        directory: directory, signal: batch.signal, firstSegment: next,
                        configuration: SpillConfiguration(directory: spillDirectory, durability: .always), rejectedArea: true)
                }()
            refusedWriters[directory] = writer
            let placement = try writer.append(batch)
            SpillLayout.appendLine(
                segmentPath(directory, placement.segment, "rejections"),
                SpillLayout.rejectionLine(offset: placement.offset, batch: batch, status: status, kind: .permanent, message: message))
            printError("\nreplay: the collector refused \(batch.recordCount) records (\(message)); a copy is in \(directory)")
        } catch {
            printError("\nreplay: the collector refused \(batch.recordCount) records (\(message)), and no copy could be kept: \(error)")
        }
    }

    /// At most ten times a second, and at the end: a frame is answered every few hundred
    /// microseconds, and a redraw per frame wrote ~4,000 lines for 2 M spans into a log file.
    private func drawProgress() {
        guard showProgress else { return }
        let done = delivered + refusedCopied + damagedKnown
        let now = ContinuousClock.now
        if let lastDrawn, now - lastDrawn < .milliseconds(100), done < total { return }
        lastDrawn = now
        ProgressBar.draw(done: done, total: total, since: start, unit: "records")
    }

    func finishProgress() {
        refusedWriters.removeAll()  // closes them: their segments are sealed
        if showProgress { printError("") }
    }

    func summary(segments: Int) -> String {
        var lines = [
            "replay: \(grouped(delivered)) records acknowledged from \(segments) segments; \(deleted) deleted, \(quarantined) "
                + "kept as .damaged"
        ]
        if damagedKnown + damagedUnknown > 0 {
            lines.append(
                "damaged: \(grouped(damagedKnown)) records "
                    + "lost\(damagedUnknown > 0 ? ", and \(damagedUnknown) damaged stretches of an unknown number of records" : "")"
            )
        }
        if refusedCopied > 0 { lines.append("refused by the collector: \(grouped(refusedCopied)) records, copies kept in refused/") }
        if refusedLeft > 0 { lines.append("refused again: \(grouped(refusedLeft)) records, left in place") }
        if let stopReason { lines.append("stopped: \(stopReason)") }
        if !leftSegments.isEmpty {
            let left = max(0, total - delivered - refusedCopied - damagedKnown)
            lines.append(
                "left on disk: \(grouped(left)) records in \(leftSegments.count) segments (progress kept: a rerun resumes), in "
                    + "\(Set(leftSegments.map { ($0 as NSString).deletingLastPathComponent }).sorted().joined(separator: ", "))"
            )
        }
        return lines.joined(separator: "\n")
    }
}

/// Sends `spillway replay`'s frames, one at a time, on a task of their own.
private enum FrameSender {
    enum Outcome: Sendable {
        case delivered(rejected: Int, message: String)
        case refused(status: Int?, message: String)
        case stop(String)
    }

    /// What one frame's send came to, and when the collector last acknowledged anything.
    struct Sent: Sendable {
        var outcome: Outcome
        var lastAcknowledged: ContinuousClock.Instant
    }

    /// Sends one frame until it is acknowledged, refused, or the collector stayed silent for
    /// `giveUpAfter` since the last acknowledgement (`lastAcknowledged`, returned updated).
    static func send(
        _ batch: ExportBatch, chain: any TelemetryExporter, giveUpAfter: Duration, showProgress: Bool,
        lastAcknowledged: ContinuousClock.Instant
    ) async -> Sent {
        while true {
            do {
                let response = try await chain.export(batch)
                let outcome = Outcome.delivered(
                    rejected: response.rejectedCount(of: batch.recordCount), message: response.errorMessage)
                return Sent(outcome: outcome, lastAcknowledged: .now)
            } catch {
                let kind = ExportFailureKind.classify(error)
                let status = (error as? OTLPExportError)?.statusCode
                switch kind {
                case .misconfigured:
                    let reason =
                        "the collector refused the request: \(error). Check the endpoint and headers (OTEL_EXPORTER_OTLP_*); "
                        + "nothing was changed"
                    return Sent(outcome: .stop(reason), lastAcknowledged: lastAcknowledged)
                case .permanent:
                    return Sent(outcome: .refused(status: status, message: "\(error)"), lastAcknowledged: lastAcknowledged)
                default:
                    let silent = lastAcknowledged.duration(to: .now)
                    if silent >= giveUpAfter {
                        let reason = "gave up after \(giveUpAfter.components.seconds) s without an acknowledgement (last error: \(error))"
                        return Sent(outcome: .stop(reason), lastAcknowledged: lastAcknowledged)
                    }
                    var wait = (error as? ResilienceError)?.retryAfter ?? .seconds(1)
                    if let floor = ((error as? OTLPExportError) ?? (error as? ResilienceError)?.cause as? OTLPExportError)?
                        .retryAfterDelay()
                    {
                        wait = max(wait, floor)
                    }
                    wait = min(max(wait, .milliseconds(100)), giveUpAfter - silent)
                    if showProgress {
                        printError(
                            "\rreplay: waiting for the collector (\(kind)): next try in \(wait.components.seconds) s; giving up "
                                + "in \((giveUpAfter - silent).components.seconds) s    "
                        )
                    }
                    try? await Task.sleep(for: wait)
                }
            }
        }
    }
}
