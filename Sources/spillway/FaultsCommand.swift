import ArgumentParser
import Foundation
import Resilience
import ResilienceTesting

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

#if os(Linux)
    /// `spillway faults` (`make faults`): each fault scenario runs `spillway load` as a child process
    /// against the embedded receiver, which misbehaves on a timeline; one table row per scenario:
    /// load, emitted, delivered (unique by `spillway.load.seq`), duplicates, dropped by reason, the
    /// child's peak RSS, and time. `--short` runs each in seconds (what `make test` runs).
    struct Faults: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the fault scenarios against the embedded receiver; one table row each.",
            discussion:
                "Each scenario runs `spillway load` as a child process against the embedded receiver. Exit status 1 if a "
                + "scenario misses its goal: every record delivered or counted, 0 lost with a spill store that has room, "
                + "peak RSS within ring + 64 MiB."
        )

        @Flag(help: "Seconds per scenario instead of minutes (make test).") var short = false
        @Option(help: "Run only the scenarios whose names contain this (repeatable).") var only: [String] = []
        @Option(help: "Also write the table, as Markdown, to this file.") var report: String?

        func validate() throws {
            guard let report else { return }
            // Checked before minutes of scenarios, not after them.
            let directory = (report as NSString).deletingLastPathComponent
            let path = directory.isEmpty ? "." : directory
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue, access(path, W_OK) == 0
            else {
                throw ValidationError("--report: cannot write \(report): \(path) is not a writable directory")
            }
        }

        func run() async throws {
            let runner = FaultRunner(short: short)
            let scenarios = runner.scenarios.filter { scenario in only.isEmpty || only.contains { scenario.name.contains($0) } }
            guard !scenarios.isEmpty else {
                throw ValidationError("--only: no scenario matches \(only); there are \(runner.scenarios.map(\.name))")
            }
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
            let drops =
                dropped.isEmpty ? "0" : dropped.sorted { $0.key < $1.key }.map { "\($0.key) \(grouped($0.value))" }.joined(separator: ", ")
            let rss = peakRSS > 0 ? "\(peakRSS / 1024) MiB" : "-"
            return
                "| \(scenario) | \(load) | \(grouped(emitted)) | \(grouped(delivered)) | \(grouped(duplicates)) | \(drops) | "
                + "\(rss) | \(String(format: "%.1f s", seconds)) | \(notes) | \(verdict) |"
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
        let tool =
            CommandLine.arguments[0].hasPrefix("/")
            ? CommandLine.arguments[0] : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0]
        /// The goal: the child's peak RSS within the ring + 64 MiB. With a spill directory the ring is
        /// a file of 32 MiB (16 MiB + what exports may hold), its pages counted in the RSS.
        static let rssBudget = (32 + 64) * 1024

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
                let elapsed =
                    Double(start.duration(to: .now).components.seconds) + Double(start.duration(to: .now).components.attoseconds) / 1e18
                while let next = pending.first, next.0 <= elapsed {
                    pending.removeFirst()
                    next.1()
                }
                if let killAfter, elapsed >= killAfter { kill(pid, SIGKILL) }
                if start.duration(to: .now) > deadline { kill(pid, SIGKILL) }
                let done = wait4(pid, &status, WNOHANG, &usage)
                if done == pid { break }
                usleep(20_000)
            }
            let output = reader.finish()
            let json = output.split(separator: "\n").last { $0.hasPrefix("{") }.flatMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return LoadOutcome(status: exit, peakRSS: peak, books: json ?? [:], output: output)
        }

        /// `VmHWM` of a running process, in KiB (0 once it is gone).
        static func peakRSS(of pid: pid_t) -> Int {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
            else { return 0 }
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
            var arguments =
                [
                    "load", "--endpoint", receiver.endpoint, "--spans", "\(rate * seconds)", "--rate", "\(rate)", "--quiet", "--json",
                    "--drain-timeout", "30", "--wait-for-backlog", short ? "60" : "300"
                ] + extra
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
                    notes.append(
                        String(
                            format: "first request %.1f s after recovery",
                            Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18))
                }
            }
            row.notes = notes.joined(separator: "; ")
            row.verdict = verdict(
                emitted: row.emitted, unaccounted: unaccounted, mustNotDrop: mustNotDrop ?? spill, dropped: row.dropped, rss: row.peakRSS,
                status: outcome.status, onDisk: outcome.count("on_disk"))
            return row
        }

        func verdict(emitted: Int, unaccounted: Int, mustNotDrop: Bool, dropped: [String: Int], rss: Int, status: Int32, onDisk: Int)
            -> String
        {
            var problems: [String] = []
            if emitted == 0 { problems.append("nothing emitted (exit \(status))") }
            if unaccounted != 0 { problems.append("\(unaccounted) records unaccounted for") }
            if mustNotDrop && !dropped.isEmpty { problems.append("dropped with a spill store") }
            if onDisk != 0 { problems.append("\(onDisk) left on disk") }
            if rss > Self.rssBudget { problems.append("peak RSS \(rss / 1024) MiB over \(Self.rssBudget / 1024) MiB") }
            return problems.isEmpty ? "ok" : "FAIL: " + problems.joined(separator: "; ")
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
