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
    /// The scenarios of `spillway faults` and the ones that need more than the common load scenario.
    extension FaultRunner {
        var scenarios: [FaultScenario] {
            // Full: the published figures. Short: the same shapes in seconds, for `make test`.
            let outage = short ? (rate: 20_000, seconds: 10, from: 2.0, to: 6.0) : (rate: 100_000, seconds: 90, from: 10.0, to: 70.0)
            let fault = short ? (rate: 20_000, seconds: 8, from: 2.0, to: 4.0) : (rate: 20_000, seconds: 20, from: 3.0, to: 10.0)
            return [
                FaultScenario(name: "collector down \(Int(outage.to - outage.from)) s, spill store") {
                    let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
                    defer { Task { try? await receiver.stop() } }
                    return try self.loadScenario(
                        "collector down \(Int(outage.to - outage.from)) s, spill store", rate: outage.rate, seconds: outage.seconds,
                        spill: true,
                        receiver: receiver,
                        timeline: [(outage.from, { receiver.behavior = .resetConnection }), (outage.to, { receiver.behavior = .accept })],
                        recoveryAt: outage.to
                    ) { "spilled \(grouped($0.count("spilled"))), replayed \(grouped($0.count("replayed")))" }
                },
                FaultScenario(name: "collector down \(Int(outage.to - outage.from)) s, no spill store") {
                    let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
                    defer { Task { try? await receiver.stop() } }
                    return try self.loadScenario(
                        "collector down \(Int(outage.to - outage.from)) s, no spill store", rate: outage.rate, seconds: outage.seconds,
                        spill: false,
                        receiver: receiver,
                        timeline: [(outage.from, { receiver.behavior = .resetConnection }), (outage.to, { receiver.behavior = .accept })]
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
                    return try self.loadScenario(
                        "503 + Retry-After: HTTP date", rate: fault.rate, seconds: fault.seconds, spill: true, receiver: receiver,
                        timeline: timeline)
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
                        "2 s per request", rate: self.short ? 2_000 : 5_000, seconds: self.short ? 6 : 20, spill: true, receiver: receiver,
                        timeline: [],
                        extra: ["--drain-timeout", "60"]
                    ) { "export window opened to \($0.count("export_window_peak")) requests; \(grouped($0.count("spilled"))) spilled" }
                },
                FaultScenario(name: "401, then a live reconfigure") {
                    let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
                    defer { Task { try? await receiver.stop() } }
                    let (from, to) = self.short ? (1.0, 4.0) : (5.0, 25.0)
                    return try self.loadScenario(
                        "401 for \(Int(to - from)) s, then a live reconfigure", rate: 10_000, seconds: self.short ? 8 : 40, spill: true,
                        receiver: receiver,
                        timeline: [(from, { receiver.behavior = .fail(status: 401) }), (to, { receiver.behavior = .accept })],
                        extra: ["--reconfigure-at", "\(to + 0.5)"]
                    ) { "kept as rejected \(grouped($0.count("rejected"))), replayed \(grouped($0.count("replayed")))" }
                },
                FaultScenario(name: "SIGKILL × N, always durability") { try await self.crashes() },
                FaultScenario(name: "crash × 20, ring file, collector up") { try await self.ringCrashes(collectorUp: true) },
                FaultScenario(name: "crash × 20, ring file, collector down") { try await self.ringCrashes(collectorUp: false) },
                FaultScenario(name: "disk full, then space returns") { try await self.diskFull() },
                FaultScenario(name: "hostile segment files") { try await self.hostileFiles() }
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
                timeline: [(fault.from, { receiver.behavior = behavior }), (fault.to, { receiver.behavior = .accept })],
                recoveryAt: fault.to
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
                    [
                        "load", "--endpoint", "http://127.0.0.1:9", "--spans", "100000000", "--rate", "20000", "--quiet", "--spill-dir",
                        directory,
                        "--sequence-start", "\(i * 1_000_000)"
                    ],
                    environment: ["SPILLWAY_SPILL_DURABILITY": "always", "SPILLWAY_OVERFLOW": "drop_newest"], deadline: .seconds(30),
                    killAfter: Double.random(in: 4.0...8.0, using: &generator))
                peak = max(peak, outcome.peakRSS)
            }
            let inspect = try spawn(["inspect", directory], deadline: .seconds(60))
            let total = inspect.output.split(separator: "\n").last { $0.hasPrefix("total:") }.map(String.init) ?? ""
            let onDisk =
                total.range(of: " records").flatMap {
                    Int(total[..<$0.lowerBound].split(separator: " ").last?.replacing(",", with: "") ?? "")
                } ?? 0
            let receiver = try await OTLPReceiver.start(retention: [], countIDs: true)
            defer { Task { try? await receiver.stop() } }
            let replay = try spawn(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"], deadline: .seconds(300))
            var row = FaultRow(
                scenario: "SIGKILL × \(kills), always durability",
                load: "20,000 spans/s, collector down, killed after 4–8 s, \(kills) times")
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
            guard getuid() == 0 else {
                return FaultRow(scenario: "disk full, then space returns", load: "-", notes: "needs root (a tmpfs mount)", verdict: "ok")
            }
            let mountPoint = temporaryDirectory()
            guard mount("tmpfs", mountPoint, "tmpfs", 0, "size=8m") == 0 else {
                throw ValidationError("mount tmpfs: \(String(cString: strerror(errno)))")
            }
            defer {
                umount2(mountPoint, Int32(MNT_DETACH))
                rmdir(mountPoint)
            }
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
                            names.contains(where: { $0.hasSuffix(".open") || $0.hasSuffix(".spill") })
                        {
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
            guard ftruncate(fd, off_t(max(0, size - leaving))) == 0 else {
                throw ValidationError("truncate \(path): \(String(cString: strerror(errno)))")
            }
        }

        /// Every corruption the file tools once mishandled, through `verify` and `replay`.
        private func hostileFiles() async throws -> FaultRow {
            let directory = temporaryDirectory() + "/spill"
            defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
            let start = ContinuousClock.now
            let load = try spawn(
                [
                    "load", "--endpoint", "http://127.0.0.1:9", "--spans", "20000", "--logs", "3000", "--quiet", "--json", "--spill-dir",
                    directory
                ],
                deadline: .seconds(120))
            let written = load.count("emitted") + ((load.books["logs"] as? [String: Any])?["emitted"] as? Int ?? 0)
            let traces = directory + "/traces/00000000000000000001.spill"
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: traces)))
            func frameOffsets() -> [Int] {
                var offsets: [Int] = [], at = 32
                while at + 32 <= bytes.count {
                    offsets.append(at)
                    at +=
                        32
                        + Int(
                            UInt32(bytes[at + 4]) | UInt32(bytes[at + 5]) << 8 | UInt32(bytes[at + 6]) << 16 | UInt32(bytes[at + 7]) << 24)
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
            forge(1, field: 4, 0xFFFF_FFF0)  // a length beyond the file, valid CRC
            forge(5, field: 12, 0x7FFF_FFFF)  // two billion records, valid CRC
            bytes[offsets[9] + 1] ^= 0xFF  // a damaged header
            bytes[offsets[13] + 100] ^= 0xFF  // a damaged payload
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
            var row = FaultRow(
                scenario: "hostile segment files", load: "\(grouped(written)) records on disk, 4 frames damaged, 2 foreign files")
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
#endif
