import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Resilience
import ResilienceTesting

#if os(Linux)
/// `spillway faults` (`make faults`): each fault scenario runs `spillway load` as a child process
/// against the embedded receiver, which misbehaves on a timeline; one table row per scenario:
/// load, emitted, delivered (unique by `spillway.load.seq`), duplicates, dropped by reason, the
/// child's peak RSS, and time. `--short` runs each in seconds (what `make test` runs).
struct Faults: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the fault scenarios against the embedded receiver; one table row each.",
        discussion: "Each scenario runs `spillway load` as a child process against the embedded receiver. Exit status 1 if a scenario misses its goal: every record delivered or counted, 0 lost with a spill store that has room, peak RSS within ring + 64 MiB.")

    @Flag(help: "Seconds per scenario instead of minutes (make test).") var short = false
    @Option(help: "Run only the scenarios whose names contain this (repeatable).") var only: [String] = []
    @Option(help: "Also write the table, as Markdown, to this file.") var report: String?

    func run() async throws {
        let runner = FaultRunner(short: short)
        let scenarios = runner.scenarios.filter { scenario in only.isEmpty || only.contains { scenario.name.contains($0) } }
        guard !scenarios.isEmpty else { throw ValidationError("--only: no scenario matches \(only); there are \(runner.scenarios.map(\.name))") }
        var rows: [FaultRow] = []
        print(FaultRow.header)
        fflush(nil)
        for scenario in scenarios {
            let row: FaultRow
            do {
                row = try await scenario.run()
            } catch {
                row = FaultRow(scenario: scenario.name, load: "-", verdict: "FAIL: \(error)")
            }
            print(row.line)
            fflush(nil)
            rows.append(row)
        }
        let table = ([FaultRow.header, FaultRow.rule] + rows.map(\.line)).joined(separator: "\n")
        if let report { try (table + "\n").write(toFile: report, atomically: true, encoding: .utf8) }
        let failed = rows.filter { $0.verdict != "ok" }
        if !failed.isEmpty {
            print("\n\(failed.count) of \(rows.count) scenarios missed their goal: \(failed.map(\.scenario).joined(separator: ", "))")
            throw ExitCode(1)
        }
        print("\nall \(rows.count) scenarios met their goals")
    }
}

/// One row of the table.
struct FaultRow {
    var scenario: String
    var load: String
    var emitted = 0
    var delivered = 0
    var duplicates = 0
    var dropped: [String: Int] = [:]
    var peakRSS = 0  // KiB
    var seconds = 0.0
    var notes = ""
    var verdict = "ok"

    static let header = "| scenario | load | emitted | delivered | duplicates | dropped | peak RSS | time | notes | goal |"
    static let rule = "|---|---|---:|---:|---:|---|---:|---:|---|---|"

    var line: String {
        let drops = dropped.isEmpty ? "0" : dropped.sorted { $0.key < $1.key }.map { "\($0.key) \(grouped($0.value))" }.joined(separator: ", ")
        let rss = peakRSS > 0 ? "\(peakRSS / 1024) MiB" : "-"
        return "| \(scenario) | \(load) | \(grouped(emitted)) | \(grouped(delivered)) | \(grouped(duplicates)) | \(drops) | \(rss) | \(String(format: "%.1f s", seconds)) | \(notes) | \(verdict) |"
    }
}

struct FaultScenario {
    var name: String
    var run: () async throws -> FaultRow
}

/// What a child `spillway load --json` reported, and how it ran.
struct LoadOutcome {
    var status: Int32
    var peakRSS: Int  // KiB
    var books: [String: Any]
    var output: String

    var spans: [String: Any] { books["spans"] as? [String: Any] ?? [:] }
    func count(_ key: String) -> Int { spans[key] as? Int ?? 0 }
    var dropped: [String: Int] { (spans["dropped"] as? [String: Int]) ?? [:] }
    var emitMaxMilliseconds: Double { Double(books["emit_max_ns"] as? Int ?? 0) / 1e6 }
}

final class FaultRunner: @unchecked Sendable {
    let short: Bool
    let tool = CommandLine.arguments[0].hasPrefix("/") ? CommandLine.arguments[0] : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0]
    /// The goal: the child's peak RSS within the ring (16 MiB) + 64 MiB.
    static let rssBudget = (16 + 64) * 1024

    init(short: Bool) { self.short = short }

    func temporaryDirectory() -> String {
        var template = Array("/tmp/spillway-faults-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    /// Runs `spillway <arguments>` with `environment` added; meanwhile `timeline` acts at its times
    /// (seconds after start). Kills the child after `deadline`.
    func spawn(
        _ arguments: [String], environment: [String: String] = [:], timeline: [(Double, () -> Void)] = [], deadline: Duration,
        killAfter: Double? = nil
    ) throws -> LoadOutcome {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OTEL_") && !$0.key.hasPrefix("SPILLWAY_") }
        for (k, v) in environment { env[k] = v }
        let out = Pipe()
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, out.fileHandleForWriting.fileDescriptor, 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([tool] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, tool, &actions, nil, argv, envp)
        guard rc == 0 else { throw ValidationError("posix_spawn \(tool): \(String(cString: strerror(rc)))") }
        try out.fileHandleForWriting.close()
        let reader = OutputReader(out.fileHandleForReading)
        let start = ContinuousClock.now
        var pending = timeline.sorted { $0.0 < $1.0 }
        var status: Int32 = 0
        var usage = rusage()
        // The child's own peak RSS, from /proc (its rusage would count the parent's memory: a
        // posix_spawn child runs in the parent's address space until it execs).
        var peak = 0
        while true {
            peak = max(peak, Self.peakRSS(of: pid))
            let elapsed = Double(start.duration(to: .now).components.seconds) + Double(start.duration(to: .now).components.attoseconds) / 1e18
            while let next = pending.first, next.0 <= elapsed { pending.removeFirst(); next.1() }
            if let killAfter, elapsed >= killAfter { kill(pid, SIGKILL) }
            if start.duration(to: .now) > deadline { kill(pid, SIGKILL) }
            let done = wait4(pid, &status, WNOHANG, &usage)
            if done == pid { break }
            usleep(20_000)
        }
        let output = reader.finish()
        let json = output.split(separator: "\n").last { $0.hasPrefix("{") }.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return LoadOutcome(status: exit, peakRSS: peak, books: json ?? [:], output: output)
    }

    /// `VmHWM` of a running process, in KiB (0 once it is gone).
    static func peakRSS(of pid: pid_t) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// A load against `receiver`, the receiver misbehaving on `timeline`; the row's books.
    func loadScenario(
        _ name: String, rate: Int, seconds: Int, spill: Bool, receiver: OTLPReceiver, timeline: [(Double, () -> Void)],
        environment: [String: String] = [:], extra: [String] = [], recoveryAt: Double? = nil, spillDirectory: String? = nil,
        mustNotDrop: Bool? = nil, note: (LoadOutcome) -> String = { _ in "" }
    ) throws -> FaultRow {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var env = ["SPILLWAY_OVERFLOW": "drop_newest"]
        for (k, v) in environment { env[k] = v }
        var arguments = ["load", "--endpoint", receiver.endpoint, "--spans", "\(rate * seconds)", "--rate", "\(rate)", "--quiet", "--json",
                         "--drain-timeout", "30", "--wait-for-backlog", short ? "60" : "300"] + extra
        if spill { arguments += ["--spill-dir", spillDirectory ?? directory + "/spill"] }
        let start = ContinuousClock.now
        let outcome = try spawn(arguments, environment: env, timeline: timeline, deadline: .seconds(seconds + 420))
        var row = FaultRow(scenario: name, load: "\(grouped(rate)) spans/s × \(seconds) s\(spill ? ", spill store" : "")")
        row.seconds = elapsedSeconds(since: start)
        row.emitted = outcome.count("emitted")
        let report = receiver.sequenceReport(expected: row.emitted)
        row.delivered = report.received
        row.duplicates = report.duplicates
        row.dropped = outcome.dropped
        row.peakRSS = outcome.peakRSS
        let unaccounted = row.emitted - row.delivered - row.dropped.values.reduce(0, +) - outcome.count("on_disk")
        var notes = [String(format: "emit max %.1f ms", outcome.emitMaxMilliseconds)] + [note(outcome)].filter { !$0.isEmpty }
        if let recoveryAt {
            // How soon after the collector recovered a request went out again (the breaker's probe).
            let recovered = start + .milliseconds(Int64(recoveryAt * 1000))
            if let first = receiver.requestTimes.first(where: { $0 >= recovered }) {
                let delay = recovered.duration(to: first)
                notes.append(String(format: "first request %.1f s after recovery", Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18))
            }
        }
        row.notes = notes.joined(separator: "; ")
        row.verdict = verdict(
            emitted: row.emitted, unaccounted: unaccounted, mustNotDrop: mustNotDrop ?? spill, dropped: row.dropped, rss: row.peakRSS,
            status: outcome.status, onDisk: outcome.count("on_disk"))
        return row
    }

    func verdict(emitted: Int, unaccounted: Int, mustNotDrop: Bool, dropped: [String: Int], rss: Int, status: Int32, onDisk: Int) -> String {
        var problems: [String] = []
        if emitted == 0 { problems.append("nothing emitted (exit \(status))") }
        if unaccounted != 0 { problems.append("\(unaccounted) records unaccounted for") }
        if mustNotDrop && !dropped.isEmpty { problems.append("dropped with a spill store") }
        if onDisk != 0 { problems.append("\(onDisk) left on disk") }
        if rss > Self.rssBudget { problems.append("peak RSS \(rss / 1024) MiB over \(Self.rssBudget / 1024) MiB") }
        return problems.isEmpty ? "ok" : "FAIL: " + problems.joined(separator: "; ")
    }

    var scenarios: [FaultScenario] {
        // Full: the published figures. Short: the same shapes in seconds, for `make test`.
        let outage = short ? (rate: 20_000, seconds: 10, from: 2.0, to: 6.0) : (rate: 100_000, seconds: 90, from: 10.0, to: 70.0)
        let fault = short ? (rate: 20_000, seconds: 8, from: 2.0, to: 4.0) : (rate: 20_000, seconds: 20, from: 3.0, to: 10.0)
        return [
            FaultScenario(name: "collector down \(Int(outage.to - outage.from)) s, spill store") {
                let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
                defer { Task { try? await receiver.stop() } }
                return try self.loadScenario(
                    "collector down \(Int(outage.to - outage.from)) s, spill store", rate: outage.rate, seconds: outage.seconds, spill: true,
                    receiver: receiver, timeline: [(outage.from, { receiver.behavior = .resetConnection }), (outage.to, { receiver.behavior = .accept })],
                    recoveryAt: outage.to
                ) { "spilled \(grouped($0.count("spilled"))), replayed \(grouped($0.count("replayed")))" }
            },
            FaultScenario(name: "collector down \(Int(outage.to - outage.from)) s, no spill store") {
                let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
                defer { Task { try? await receiver.stop() } }
                return try self.loadScenario(
                    "collector down \(Int(outage.to - outage.from)) s, no spill store", rate: outage.rate, seconds: outage.seconds, spill: false,
                    receiver: receiver, timeline: [(outage.from, { receiver.behavior = .resetConnection }), (outage.to, { receiver.behavior = .accept })]
                ) { _ in "every loss counted (drop_newest)" }
            },
            FaultScenario(name: "503 + Retry-After: 2") {
                try await self.window("503 + Retry-After: 2", fault, .fail(status: 503, retryAfter: "2"))
            },
            FaultScenario(name: "503 + Retry-After: HTTP date") {
                let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
                defer { Task { try? await receiver.stop() } }
                var timeline: [(Double, () -> Void)] = []
                // The date two seconds ahead, renewed every half second while failing.
                for t in stride(from: fault.from, to: fault.to, by: 0.5) {
                    timeline.append((t, { receiver.behavior = .fail(status: 503, retryAfter: httpDate(secondsFromNow: 2)) }))
                }
                timeline.append((fault.to, { receiver.behavior = .accept }))
                return try self.loadScenario("503 + Retry-After: HTTP date", rate: fault.rate, seconds: fault.seconds, spill: true, receiver: receiver, timeline: timeline)
            },
            FaultScenario(name: "429 + Retry-After: 1") {
                try await self.window("429 + Retry-After: 1", fault, .fail(status: 429, retryAfter: "1"))
            },
            FaultScenario(name: "connection resets") {
                try await self.window("connection resets", fault, .resetConnection)
            },
            FaultScenario(name: "2 s per request") {
                let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
                defer { Task { try? await receiver.stop() } }
                receiver.behavior = .delay(.seconds(2))
                return try self.loadScenario(
                    "2 s per request", rate: self.short ? 2_000 : 5_000, seconds: self.short ? 6 : 20, spill: true, receiver: receiver, timeline: [],
                    extra: ["--drain-timeout", "60"]
                ) { "\(grouped($0.count("spilled"))) spilled while every export slot waited" }
            },
            FaultScenario(name: "401, then a live reconfigure") {
                let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
                defer { Task { try? await receiver.stop() } }
                let (from, to) = self.short ? (1.0, 4.0) : (5.0, 25.0)
                return try self.loadScenario(
                    "401 for \(Int(to - from)) s, then a live reconfigure", rate: 10_000, seconds: self.short ? 8 : 40, spill: true, receiver: receiver,
                    timeline: [(from, { receiver.behavior = .fail(status: 401) }), (to, { receiver.behavior = .accept })],
                    extra: ["--reconfigure-at", "\(to + 0.5)"]
                ) { "kept as rejected \(grouped($0.count("rejected"))), replayed \(grouped($0.count("replayed")))" }
            },
            FaultScenario(name: "SIGKILL × N, always durability") { try await self.crashes() },
            FaultScenario(name: "disk full, then space returns") { try await self.diskFull() },
            FaultScenario(name: "hostile segment files") { try await self.hostileFiles() },
        ]
    }

    /// A load whose receiver answers `behavior` for the fault window.
    private func window(
        _ name: String, _ fault: (rate: Int, seconds: Int, from: Double, to: Double), _ behavior: OTLPReceiver.Behavior
    ) async throws -> FaultRow {
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        defer { Task { try? await receiver.stop() } }
        return try loadScenario(
            "\(name) for \(Int(fault.to - fault.from)) s", rate: fault.rate, seconds: fault.seconds, spill: true, receiver: receiver,
            timeline: [(fault.from, { receiver.behavior = behavior }), (fault.to, { receiver.behavior = .accept })], recoveryAt: fault.to
        ) { "\(grouped($0.count("spilled"))) spilled" }
    }

    /// Loads killed with SIGKILL at random moments (each a new process that recovers the last
    /// one's `.open` segment), then `spillway replay`: every record on disk after recovery arrives.
    private func crashes() async throws -> FaultRow {
        let kills = short ? 3 : 10
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let start = ContinuousClock.now
        var peak = 0
        var generator = SystemRandomNumberGenerator()
        for i in 0..<kills {
            let outcome = try spawn(
                ["load", "--endpoint", "http://127.0.0.1:9", "--spans", "100000000", "--rate", "20000", "--quiet", "--spill-dir", directory,
                 "--sequence-start", "\(i * 1_000_000)"],
                environment: ["SPILLWAY_SPILL_DURABILITY": "always", "SPILLWAY_OVERFLOW": "drop_newest"], deadline: .seconds(30),
                killAfter: Double.random(in: 4.0...8.0, using: &generator))
            peak = max(peak, outcome.peakRSS)
        }
        let inspect = try spawn(["inspect", directory], deadline: .seconds(60))
        let total = inspect.output.split(separator: "\n").last { $0.hasPrefix("total:") }.map(String.init) ?? ""
        let onDisk = total.range(of: " records").flatMap { Int(total[..<$0.lowerBound].split(separator: " ").last?.replacing(",", with: "") ?? "") } ?? 0
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
        defer { Task { try? await receiver.stop() } }
        let replay = try spawn(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"], deadline: .seconds(300))
        var row = FaultRow(scenario: "SIGKILL × \(kills), always durability", load: "20,000 spans/s, collector down, killed after 4–8 s, \(kills) times")
        row.seconds = elapsedSeconds(since: start)
        row.emitted = onDisk
        row.delivered = receiver.spanCount - (receiver.duplicateSpanIDs)
        row.duplicates = receiver.duplicateSpanIDs
        row.peakRSS = peak
        row.notes = "on disk after recovery: \(grouped(onDisk)); replay exit \(replay.status)"
        var problems: [String] = []
        if onDisk == 0 { problems.append("nothing on disk") }
        if receiver.spanCount != onDisk || replay.status != 0 { problems.append("replay delivered \(receiver.spanCount) of \(onDisk)") }
        if peak > Self.rssBudget { problems.append("peak RSS \(peak / 1024) MiB") }
        row.verdict = problems.isEmpty ? "ok" : "FAIL: " + problems.joined(separator: "; ")
        return row
    }

    /// A spill store on a small tmpfs, filled by a ballast file: batches are dropped as
    /// `disk_full` (counted and reported); then the ballast goes and the collector comes back.
    private func diskFull() async throws -> FaultRow {
        guard getuid() == 0 else { return FaultRow(scenario: "disk full, then space returns", load: "-", notes: "needs root (a tmpfs mount)", verdict: "ok") }
        let mountPoint = temporaryDirectory()
        guard mount("tmpfs", mountPoint, "tmpfs", 0, "size=8m") == 0 else { throw ValidationError("mount tmpfs: \(String(cString: strerror(errno)))") }
        defer { umount2(mountPoint, Int32(MNT_DETACH)) }
        let ballast = mountPoint + "/ballast"
        try fillUntilFull(ballast, leaving: 64 << 10)
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        defer { Task { try? await receiver.stop() } }
        receiver.behavior = .resetConnection
        let (seconds, rate) = short ? (8, 10_000) : (30, 20_000)
        // The space returns 1.5 s after the store first met the full disk (its first segment file
        // appears), at the latest at 60 % of the run: a fixed time raced the breaker's opening,
        // and a run whose breaker opened late never met the full disk at all.
        let spillDirectory = mountPoint + "/spill"
        let latest = ContinuousClock.now + .milliseconds(Int64(seconds) * 600)
        let freeSpace = {
            Thread.detachNewThread {
                var metAt: ContinuousClock.Instant?
                while ContinuousClock.now < latest {
                    if metAt == nil, let names = try? FileManager.default.contentsOfDirectory(atPath: spillDirectory + "/traces"),
                       names.contains(where: { $0.hasSuffix(".open") || $0.hasSuffix(".spill") }) {
                        metAt = ContinuousClock.now
                    }
                    if let metAt, ContinuousClock.now >= metAt + .milliseconds(1500) { break }
                    usleep(50_000)
                }
                unlink(ballast)
            }
        }
        var row = try loadScenario(
            "disk full (8 MiB tmpfs), then space returns", rate: rate, seconds: seconds, spill: true, receiver: receiver,
            timeline: [(0, freeSpace), (Double(seconds) * 0.75, { receiver.behavior = .accept })],
            environment: ["SPILLWAY_SPILL_MAX_SEGMENT_BYTES": "262144", "SPILLWAY_SPILL_MAX_BYTES": "6291456"],
            spillDirectory: spillDirectory, mustNotDrop: false
        ) { "spilled \(grouped($0.count("spilled"))); every disk_full drop counted and reported" }
        if row.verdict == "ok" && (row.dropped["disk_full"] ?? 0) == 0 { row.verdict = "FAIL: the disk never filled" }
        return row
    }

    /// Writes `path` until the file system is full, then gives back `leaving` bytes: the spill
    /// store meets a full disk whatever the machine's speed (a fixed-size ballast left room for a
    /// few hundred kilobytes of frames, which a slow machine never filled before the ballast went).
    private func fillUntilFull(_ path: String, leaving: Int) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw ValidationError("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0xA5, count: 64 << 10)
        var size = 0
        while true {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            size += n
        }
        guard errno == ENOSPC || size > 0 else { throw ValidationError("fill \(path): \(String(cString: strerror(errno)))") }
        guard ftruncate(fd, off_t(max(0, size - leaving))) == 0 else { throw ValidationError("truncate \(path): \(String(cString: strerror(errno)))") }
    }

    /// Every corruption the file tools once mishandled, through `verify` and `replay`.
    private func hostileFiles() async throws -> FaultRow {
        let directory = temporaryDirectory() + "/spill"
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let start = ContinuousClock.now
        let load = try spawn(["load", "--endpoint", "http://127.0.0.1:9", "--spans", "20000", "--logs", "3000", "--quiet", "--json", "--spill-dir", directory],
                             deadline: .seconds(120))
        let written = load.count("emitted") + ((load.books["logs"] as? [String: Any])?["emitted"] as? Int ?? 0)
        let traces = directory + "/traces/00000000000000000001.spill"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: traces)))
        func frameOffsets() -> [Int] {
            var offsets: [Int] = [], at = 32
            while at + 32 <= bytes.count {
                offsets.append(at)
                at += 32 + Int(UInt32(bytes[at + 4]) | UInt32(bytes[at + 5]) << 8 | UInt32(bytes[at + 6]) << 16 | UInt32(bytes[at + 7]) << 24)
            }
            return offsets
        }
        let offsets = frameOffsets()
        func forge(_ frame: Int, field: Int, _ value: UInt32) {
            let at = offsets[frame]
            for i in 0..<4 { bytes[at + field + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
            let crc = bytes[at..<at + 28].withUnsafeBytes { SpillChecksum.crc32c($0) }
            for i in 0..<4 { bytes[at + 28 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        }
        forge(1, field: 4, 0xFFFF_FFF0)          // a length beyond the file, valid CRC
        forge(5, field: 12, 0x7FFF_FFFF)         // two billion records, valid CRC
        bytes[offsets[9] + 1] ^= 0xFF            // a damaged header
        bytes[offsets[13] + 100] ^= 0xFF         // a damaged payload
        try Data(bytes).write(to: URL(fileURLWithPath: traces))
        // Segments of the logs directory moved under traces/, a torn .open, foreign files.
        let logsSegment = directory + "/logs/00000000000000000001.spill"
        try FileManager.default.moveItem(atPath: logsSegment, toPath: directory + "/traces/00000000000000000007.spill")
        let intactLogs = 3_000
        try "precious\n".write(toFile: directory + "/traces/notes.txt", atomically: true, encoding: .utf8)
        try "not a segment\n".write(toFile: directory + "/traces/00000000000000000008.spill", atomically: true, encoding: .utf8)
        let damagedRecords = 512 * 4  // frames 1, 5, 9, 13: their headers name 512 each (frame 5's count is unknown)
        let intactSpans = 20_000 - damagedRecords
        let verify = try spawn(["verify", directory], deadline: .seconds(60))
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        defer { Task { try? await receiver.stop() } }
        let replay = try spawn(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"], deadline: .seconds(120))
        var row = FaultRow(scenario: "hostile segment files", load: "\(grouped(written)) records on disk, 4 frames damaged, 2 foreign files")
        row.seconds = elapsedSeconds(since: start)
        row.emitted = written
        row.delivered = receiver.spanCount + receiver.logCount
        row.dropped = ["corrupt": written - row.delivered]
        row.peakRSS = max(verify.peakRSS, replay.peakRSS)
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/traces")) ?? []).sorted()
        row.notes = "verify exit \(verify.status), replay exit \(replay.status); left: \(left.joined(separator: " "))"
        var problems: [String] = []
        if verify.status != 1 || replay.status != 1 { problems.append("exit codes \(verify.status)/\(replay.status), expected 1/1") }
        if receiver.spanCount != intactSpans || receiver.logCount != intactLogs {
            problems.append("delivered \(receiver.spanCount) spans, \(receiver.logCount) logs; expected \(intactSpans), \(intactLogs)")
        }
        if !left.contains("notes.txt") || !left.contains("00000000000000000008.spill") { problems.append("a foreign file was touched") }
        if !left.contains("00000000000000000001.damaged") { problems.append("the damaged segment was not kept") }
        if replay.output.contains("2,147,483,647") || !replay.output.contains("unknown") { problems.append("counts: \(replay.output)") }
        row.verdict = problems.isEmpty ? "ok" : "FAIL: " + problems.joined(separator: "; ")
        return row
    }
}

/// Reads a pipe to its end on a thread of its own (a full pipe would block the child).
final class OutputReader: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private let thread: Thread

    init(_ handle: FileHandle) {
        let box = DataBox()
        thread = Thread { box.data = handle.readDataToEndOfFile() }
        self.box = box
        thread.start()
    }

    private let box: DataBox
    private final class DataBox: @unchecked Sendable { var data = Data() }

    func finish() -> String {
        while !thread.isFinished { usleep(1_000) }
        return String(decoding: box.data, as: UTF8.self)
    }
}

func elapsedSeconds(since start: ContinuousClock.Instant) -> Double { seconds(start.duration(to: .now)) }

/// An IMF-fixdate `seconds` from now (RFC 9110), for Retry-After.
func httpDate(secondsFromNow: Int) -> String {
    var t = time(nil) + secondsFromNow
    var parts = tm()
    gmtime_r(&t, &parts)
    var buffer = [CChar](repeating: 0, count: 64)
    let n = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
    return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

#else

/// The fault suite needs Linux (posix_spawn as glibc declares it, /proc, tmpfs mounts).
struct Faults: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the fault scenarios (Linux only).")
    func run() throws { throw ValidationError("spillway faults runs on Linux only") }
}
#endif
