import Foundation
import Glibc
import Resilience
import ResilienceTesting
import Synchronization
import Testing

/// The `spillway` file tools on real spill directories — and on what is not one: every test
/// here reproduces a way the tools once destroyed, misrouted or miscounted data.
@Suite struct FileToolTests {
    static let tool = repositoryRoot.appendingPathComponent(".build/debug/spillway").path

    /// Runs the tool and waits for it off the cooperative pool (``blockingCall(_:)``).
    @discardableResult
    static func run(
        _ arguments: [String], in directory: String? = nil, timeout: Duration = .seconds(120), environment: [String: String] = [:]
    ) async throws -> (status: Int32, output: String, error: String) {
        try await blockingCall { try runBlocking(arguments, in: directory, timeout: timeout, environment: environment) }
    }

    private static func runBlocking(_ arguments: [String], in directory: String?, timeout: Duration, environment: [String: String]) throws
        -> (status: Int32, output: String, error: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes while the tool runs (a full pipe would block it).
        let errorData = Mutex(Data())
        let reader = Thread { errorData.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() } }
        reader.start()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.terminate()
                Issue.record("spillway \(arguments) ran past \(timeout)")
            }
            usleep(10_000)
        }
        while !reader.isFinished { usleep(1_000) }
        return (
            process.terminationStatus, String(decoding: data, as: UTF8.self), String(decoding: errorData.withLock { $0 }, as: UTF8.self)
        )
    }

    static func temporaryDirectory() -> String {
        TestDirectory.make("tools")
    }

    /// A spill directory made the way users make one: `spillway load` against a dead endpoint.
    static func spillDirectory(spans: Int = 20_000, logs: Int = 3_000) async throws -> String {
        let directory = temporaryDirectory() + "/spill"
        let load = try await run([
            "load", "--endpoint", "http://127.0.0.1:9", "--spans", "\(spans)", "--logs", "\(logs)", "--spill-dir", directory, "--quiet"
        ])
        #expect(load.status == 0, "load exits 0 when everything is on disk: \(load.output) \(load.error)")
        return directory
    }

    /// The record count of each frame of a segment's bytes, in file order (up to the first
    /// length that runs past the end).
    static func frameRecordCounts(_ bytes: [UInt8]) -> [Int] {
        func u32(_ at: Int) -> Int {
            Int(UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24)
        }
        var counts: [Int] = []
        var offset = 32
        while offset + 32 <= bytes.count {
            counts.append(u32(offset + 12))
            offset += 32 + u32(offset + 4)
        }
        return counts
    }

    /// `n` as the tools print it: 19,488.
    static func grouped(_ n: Int) -> String {
        let digits = Array(String(n))
        return String(digits.enumerated().flatMap { i, d in (i > 0 && (digits.count - i) % 3 == 0 ? [","] : []) + [d] })
    }

    /// `inspect`'s total line: segments, intact frames, records.
    static func totals(_ output: String) -> (segments: Int, frames: Int, records: Int)? {
        guard let match = output.firstMatch(of: /total: (\d+) segments, ([\d,]+) frames, ([\d,]+) records/) else { return nil }
        func number(_ text: Substring) -> Int { Int(text.replacingOccurrences(of: ",", with: "")) ?? -1 }
        return (number(match.1), number(match.2), number(match.3))
    }

    static func files(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    @Test(.timeLimit(.minutes(2)))
    func theToolsReadVerifyDecodeAndReplayASpillDirectory() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.tool), "build the tool first: \(Self.tool)")
        let directory = try await Self.spillDirectory()
        let inspect = try await Self.run(["inspect", directory])
        // Two segments at least (one per signal); more when the replayer sealed the open one on a
        // probe while the load ran (a loaded machine once made three).
        let segments = inspect.output.firstMatch(of: /total: (\d+) segments/).flatMap { Int($0.1) } ?? 0
        #expect(
            inspect.status == 0 && segments >= 2 && inspect.output.contains("23,000 records") && inspect.output.contains("0 damaged"),
            "\(inspect.output)")
        let verify = try await Self.run(["verify", directory])
        #expect(verify.status == 0 && verify.output.contains("0 problems"), "\(verify.output)")
        let decode = try await Self.run(["decode", directory + "/logs"])
        let lines = decode.output.split(separator: "\n")
        #expect(decode.status == 0 && lines.count == 3_000)
        let first = try #require(lines.first.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        #expect(first["body"] as? String == "load record" && first["signal"] as? String == "logs")
        let spans = try await Self.run(["decode", directory + "/traces"]).output.split(separator: "\n")
        #expect(spans.count == 20_000)
        let span = try #require(spans.last.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        #expect((span["attributes"] as? [String: Any])?["http.route"] as? String == "/load/{id}")

        // OTLP/JSON, read back by the official protobuf JSON parser.
        let otlpJSON = try await Self.run(["decode", directory, "--format", "otlp-json"])
        #expect(otlpJSON.status == 0)
        let jsonFile = Self.temporaryDirectory() + "/requests.jsonl"
        try otlpJSON.output.write(toFile: jsonFile, atomically: true, encoding: .utf8)
        let parsed = try await runPython([repositoryRoot.appendingPathComponent("Tests/conformance/check_otlp_json.py").path, jsonFile])
        #expect(
            parsed.status == 0 && parsed.output.contains("\"spans\": 20000") && parsed.output.contains("\"logs\": 3000"), "\(parsed.output)"
        )

        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        let replay = try await Self.run(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"])
        #expect(replay.status == 0, "\(replay.output) \(replay.error)")
        #expect(receiver.sequenceReport(expected: 20_000).missing == 0)
        #expect(receiver.sequenceReport(expected: 3_000, signal: .logs).missing == 0)
        let left = Self.files(directory + "/traces") + Self.files(directory + "/logs")
        #expect(left.isEmpty, "replay deletes what was acknowledged, and its progress files: \(left)")
        try await receiver.stop()
    }

    /// `spillway replay notes.txt` once deleted notes.txt.
    @Test func aFileThatIsNotASegmentIsRefusedByNameAndLeftUntouched() async throws {
        let directory = Self.temporaryDirectory()
        let notes = directory + "/notes.txt", fake = directory + "/00000000000000000001.spill"
        try "precious\n".write(toFile: notes, atomically: true, encoding: .utf8)
        try "also precious\n".write(toFile: fake, atomically: true, encoding: .utf8)
        for arguments in [
            ["replay", notes, "--endpoint", "http://127.0.0.1:9"], ["replay", fake, "--endpoint", "http://127.0.0.1:9"],
            ["replay", directory, "--endpoint", "http://127.0.0.1:9"], ["verify", notes], ["inspect", directory], ["decode", fake]
        ] {
            let result = try await Self.run(arguments)
            #expect(result.status == 1, "\(arguments): \(result.output) \(result.error)")
            #expect((result.output + result.error).contains("not a spill segment"), "\(arguments): \(result.output) \(result.error)")
        }
        #expect(try String(contentsOfFile: notes, encoding: .utf8) == "precious\n")
        #expect(try String(contentsOfFile: fake, encoding: .utf8) == "also precious\n")
    }

    @Test func missingUnreadableAndForeignPathsAreErrorsAndAnEmptyDirectoryIsZeroSegments() async throws {
        for tool in ["inspect", "verify", "decode", "replay"] {
            let missing = try await Self.run([tool, "/no/such/spill/dir"])
            #expect(missing.status == 1 && missing.error.contains("no such file or directory"), "\(tool): \(missing.error)")
            let foreign = try await Self.run([tool, "/etc"])
            #expect(foreign.status == 1 && foreign.error.contains("not a spill directory"), "\(tool): \(foreign.error)")
        }
        let empty = Self.temporaryDirectory()
        let verify = try await Self.run(["verify", empty])
        #expect(verify.status == 0 && verify.output.contains("0 segments"), "\(verify.output)")
    }

    /// `cd spill/logs && spillway replay 00…01.spill` once POSTed log records to /v1/traces.
    @Test(.timeLimit(.minutes(2)))
    func theSignalComesFromTheSegmentHeaderNotFromThePath() async throws {
        let directory = try await Self.spillDirectory(spans: 1_000, logs: 3_000)
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        // The first logs segment holds all 3,000 records, or part of them when the load's
        // replayer sealed it on a probe (a loaded machine): count what it holds.
        let segment = directory + "/logs/00000000000000000001.spill"
        let decoded = try await Self.run(["decode", segment])
        let records = decoded.output.split(separator: "\n").count
        #expect(decoded.status == 0 && records > 0 && records <= 3_000, "\(decoded.error)")
        // Moved into the traces directory: the header still says logs.
        let misplaced = directory + "/traces/00000000000000000099.spill"
        try FileManager.default.moveItem(atPath: segment, toPath: misplaced)
        let replay = try await Self.run(
            ["replay", "00000000000000000099.spill", "--endpoint", receiver.endpoint, "--quiet"], in: directory + "/traces")
        #expect(replay.status == 0, "\(replay.output) \(replay.error)")
        #expect(replay.error.contains("its header says logs"), "a path that disagrees is a warning: \(replay.error)")
        #expect(
            receiver.logCount == records && receiver.spanCount == 0, "logs \(receiver.logCount) of \(records), spans \(receiver.spanCount)")
        #expect(receiver.diagnostics.lastPath == "/v1/logs")
        try await receiver.stop()
    }

    /// A destination's part of the store (`destinations/<name>`): inspect and verify read it with
    /// the rest, replay of the whole directory leaves it alone and says so (its frames belong to
    /// another collector), and replay by its own path delivers it.
    @Test(.timeLimit(.minutes(2)))
    func aDestinationsPartIsInspectedWithTheRestButReplayedOnlyByItsOwnPath() async throws {
        let directory = try await Self.spillDirectory(spans: 1_000, logs: 0)
        let part = try await Self.spillDirectory(spans: 0, logs: 700)
        try FileManager.default.createDirectory(atPath: directory + "/destinations", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: part, toPath: directory + "/destinations/vault")
        let inspect = try await Self.run(["inspect", directory])
        #expect(inspect.status == 0 && inspect.output.contains("destinations/vault/logs/00000000000000000001.spill "), "\(inspect.output)")
        #expect(inspect.output.contains("1,700 records"), "both parts counted: \(inspect.output)")
        let verify = try await Self.run(["verify", directory])
        #expect(verify.status == 0, "\(verify.output)")

        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        let replay = try await Self.run(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"])
        #expect(replay.status == 0 && replay.error.contains("destinations/vault is a destination's part"), "\(replay.error)")
        #expect(receiver.spanCount == 1_000 && receiver.logCount == 0, "spans \(receiver.spanCount), logs \(receiver.logCount)")
        #expect(!Self.files(directory + "/destinations/vault/logs").filter { $0.hasSuffix(".spill") }.isEmpty, "left alone")
        let own = try await Self.run(["replay", directory + "/destinations/vault", "--endpoint", receiver.endpoint, "--quiet"])
        #expect(own.status == 0 && receiver.logCount == 700, "\(own.output) \(own.error)")
        try await receiver.stop()
    }

    /// A header with a valid CRC and a 4 GiB length once hid 39 intact frames; replay deleted the file.
    @Test(.timeLimit(.minutes(2)))
    func damageIsSkippedCountedAndKeptWhileTheIntactFramesAfterItAreDelivered() async throws {
        let directory = try await Self.spillDirectory(spans: 20_000, logs: 0)
        let segment = directory + "/traces/00000000000000000001.spill"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: segment)))
        // Frame 0's records (512 on a quiet machine; the load's batches are cut by time too).
        let lost = try #require(Self.frameRecordCounts(bytes).first)
        let intact = try #require(Self.totals(try await Self.run(["inspect", directory]).output))
        // Frame 0 claims 0xFFFFFFF0 bytes, its header CRC made valid again.
        bytes.replaceSubrange(36..<40, with: [0xF0, 0xFF, 0xFF, 0xFF])
        let crc = Array(bytes[32..<60]).withUnsafeBytes { SpillChecksum.crc32c($0) }
        bytes.replaceSubrange(60..<64, with: withUnsafeBytes(of: crc.littleEndian, Array.init))
        try Data(bytes).write(to: URL(fileURLWithPath: segment))

        let inspect = try await Self.run(["inspect", directory])
        let lostText = "\(Self.grouped(lost)) records lost"
        #expect(Self.totals(inspect.output)?.frames == intact.frames - 1 && inspect.output.contains(lostText), "\(inspect.output)")
        let verify = try await Self.run(["verify", directory])
        #expect(verify.status == 1 && verify.output.contains(lostText), "\(verify.output)")

        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        let replay = try await Self.run(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"])
        #expect(replay.status == 1, "damage is a data problem: \(replay.output)")
        #expect(
            replay.output.contains("\(Self.grouped(20_000 - lost)) records acknowledged") && replay.output.contains(lostText),
            "\(replay.output)")
        #expect(receiver.sequenceReport(expected: 20_000).received == 20_000 - lost)
        #expect(
            Self.files(directory + "/traces") == ["00000000000000000001.damaged"],
            "kept for inspection: \(Self.files(directory + "/traces"))")
        let quarantined = try await Self.run(["verify", directory])
        #expect(quarantined.status == 1 && quarantined.output.contains("quarantined"), "\(quarantined.output)")
        // A rerun sends nothing again.
        let again = try await Self.run(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"])
        #expect(receiver.sequenceReport(expected: 20_000).duplicates == 0, "\(again.output)")
        try await receiver.stop()
    }

    @Test func aDamagedHeaderIsAnUnknownNumberOfRecordsAndAnImplausibleCountIsNotBelieved() async throws {
        let directory = try await Self.spillDirectory(spans: 2_000, logs: 0)
        let segment = directory + "/traces/00000000000000000001.spill"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: segment)))
        // The frames' record counts as written (how the load's batches were cut depends on timing:
        // 512, 512, 512, 464 on a quiet machine, smaller ones under load), and what inspect
        // counts in the whole directory before the damage.
        let counts = Self.frameRecordCounts(bytes)
        try #require(counts.count >= 3, "at least three frames to damage two: \(counts)")
        let intact = try #require(Self.totals(try await Self.run(["inspect", directory]).output))
        bytes[33] ^= 0xFF  // frame 0's magic: the header no longer checks out
        // Frame 1 claims 2,147,483,647 records with a valid CRC.
        let second = 32 + 32 + Int(UInt32(bytes[36]) | UInt32(bytes[37]) << 8 | UInt32(bytes[38]) << 16 | UInt32(bytes[39]) << 24)
        bytes.replaceSubrange(second + 12..<second + 16, with: [0xFF, 0xFF, 0xFF, 0x7F])
        let crc = Array(bytes[second..<second + 28]).withUnsafeBytes { SpillChecksum.crc32c($0) }
        bytes.replaceSubrange(second + 28..<second + 32, with: withUnsafeBytes(of: crc.littleEndian, Array.init))
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        let verify = try await Self.run(["verify", directory])
        #expect(verify.status == 1 && verify.output.contains("an unknown number of records lost"), "\(verify.output)")
        #expect(!verify.output.contains("2,147,483,647") && !verify.output.contains("0 records lost"), "\(verify.output)")
        let inspect = try await Self.run(["inspect", directory])
        // The first two frames are lost (their counts unknown to the reader), the rest intact.
        let damaged = Self.totals(inspect.output)
        #expect(
            damaged?.segments == intact.segments && damaged?.frames == intact.frames - 2
                && damaged?.records == intact.records - counts[0] - counts[1],
            "before \(intact), frames \(counts): \(inspect.output)")
        #expect(inspect.output.contains("record count its payload cannot hold"), "\(inspect.output)")
    }

    /// Replay to a dead collector once retried each batch for 60 s, one after another: 46 minutes.
    @Test(.timeLimit(.minutes(3)))
    func aDeadCollectorIsGivenUpOnWithinTheBoundAndEverythingStaysOnDisk() async throws {
        let directory = try await Self.spillDirectory(spans: 20_000, logs: 2_000)
        let before = Self.files(directory + "/traces") + Self.files(directory + "/logs")
        let start = ContinuousClock.now
        let replay = try await Self.run(["replay", directory, "--endpoint", "http://127.0.0.1:9", "--give-up-after", "2", "--quiet"])
        let elapsed = start.duration(to: .now)
        #expect(replay.status == 1 && replay.output.contains("gave up after 2 s"), "\(replay.output)")
        #expect(replay.output.contains("left on disk: 22,000 records"), "\(replay.output)")
        #expect(elapsed < .seconds(30), "bounded: \(elapsed)")
        #expect(Self.files(directory + "/traces") + Self.files(directory + "/logs") == before, "nothing deleted or added")
    }

    /// A leftover .open segment was once skipped silently: "0 of 0 records", exit 0.
    @Test(.timeLimit(.minutes(2)))
    func anOpenSegmentIsRecoveredWhenNoProcessHoldsTheLockAndRefusedWhenOneDoes() async throws {
        let directory = try await Self.spillDirectory(spans: 5_000, logs: 0)
        let sealed = directory + "/traces/00000000000000000001.spill"
        let open = directory + "/traces/00000000000000000001.open"
        try FileManager.default.moveItem(atPath: sealed, toPath: open)  // as a crash leaves it
        let inspect = try await Self.run(["inspect", directory])
        #expect(inspect.output.contains("left by a crash"), "\(inspect.output)")

        // A pipeline holds the directory: replay refuses, and names the process.
        var configuration = PipelineConfiguration(serviceName: "holder")
        configuration.spill = SpillConfiguration(directory: directory, io: testIO)
        configuration.exporter.endpoint = "http://127.0.0.1:9"
        // The pipeline would recover the .open segment itself at start; hide it meanwhile.
        try FileManager.default.moveItem(atPath: open, toPath: open + ".aside")
        let holder = try TelemetryPipeline(configuration: configuration)
        try FileManager.default.moveItem(atPath: open + ".aside", toPath: open)
        let refused = try await Self.run(["replay", directory, "--endpoint", "http://127.0.0.1:9", "--quiet"])
        #expect(refused.status == 1 && refused.error.contains("being written by process \(getpid())"), "\(refused.error)")
        #expect(FileManager.default.fileExists(atPath: open))
        _ = await holder.shutdown(deadline: .now + .seconds(2))

        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        let replay = try await Self.run(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"])
        #expect(replay.status == 0 && replay.error.contains("recovered"), "\(replay.output) \(replay.error)")
        #expect(receiver.sequenceReport(expected: 5_000).missing == 0)
        try await receiver.stop()
    }

    /// A frame rejected with 400 once kept its whole segment, and a rerun re-sent the other 50,000 records.
    @Test(.timeLimit(.minutes(2)))
    func aRefusedFrameIsCopiedAsideAndARerunSendsNothingTwice() async throws {
        let directory = try await Self.spillDirectory(spans: 10_000, logs: 0)
        // The first frame replayed, refused: 512 records on a quiet machine (batches are cut by time too).
        let first = try #require(
            Self.frameRecordCounts(try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/traces/00000000000000000001.spill"))))
                .first)
        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        receiver.behavior = .failFirst(count: 1, status: 400)
        let replay = try await Self.run(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"])
        #expect(
            replay.status == 1 && replay.output.contains("refused by the collector: \(Self.grouped(first)) records"), "\(replay.output)")
        #expect(receiver.sequenceReport(expected: 10_000).received == 10_000 - first)
        #expect(Self.files(directory + "/traces").isEmpty, "delivered or copied aside: \(Self.files(directory + "/traces"))")
        #expect(Self.files(directory + "/refused/traces").contains { $0.hasSuffix(".spill") })
        let again = try await Self.run(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"])
        #expect(again.status == 0 && receiver.sequenceReport(expected: 10_000).duplicates == 0, "\(again.output)")
        // The copy is sent by hand with --rejected once the collector takes it.
        let byHand = try await Self.run(["replay", directory, "--rejected", "--endpoint", receiver.endpoint, "--quiet"])
        #expect(byHand.status == 0 && receiver.sequenceReport(expected: 10_000).missing == 0, "\(byHand.output)")
        try await receiver.stop()
    }
}

extension FileToolTests {
    /// Runs `spillway load --report-acks` with `arguments`, kills it with SIGKILL after `killAfter`, and
    /// returns, per emitting thread, the highest `spillway.load.seq` it saw an emit of return (-1: none)
    /// and whether it died of the signal.
    static func killedLoad(_ arguments: [String], threads: Int, environment: [String: String], killAfter: Duration) async throws -> (
        acked: [Int], killed: Bool
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["load"] + arguments + ["--quiet", "--report-acks", "--threads", "\(threads)"]
        var inherited = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OTEL_") && !$0.key.hasPrefix("SPILLWAY_") }
        for (key, value) in environment { inherited[key] = value }
        process.environment = inherited
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await Task.sleep(for: killAfter)
        kill(process.processIdentifier, SIGKILL)
        let data = try await blockingCall {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return data
        }
        var acked = [Int](repeating: -1, count: threads)
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 3, fields[0] == "acked", let t = Int(fields[1]), let seq = Int(fields[2]), t < threads {
                acked[t] = max(acked[t], seq)
            }
        }
        return (acked, process.terminationReason == .uncaughtSignal)
    }
}
