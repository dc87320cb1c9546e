import CSpill
import Foundation
import Glibc
import Resilience
import ResilienceTesting
import Testing

/// `make test-pwrite` runs the spill suites again with `SPILLWAY_SPILL_IO=pwrite`: the writers these
/// tests open with automatic I/O then use pwrite. The library reads no environment; the tests do.
let testIO: SpillConfiguration.IO = ProcessInfo.processInfo.environment["SPILLWAY_SPILL_IO"] == "pwrite" ? .pwrite : .automatic
let autoIO = testIO == .pwrite ? Int32(CSP_IO_PWRITE) : Int32(CSP_IO_AUTO)

/// Real OTLP request bodies: spans and logs emitted through a pipeline into a RecordingExporter.
private func requestBodies(signal: TelemetrySignal, batches: Int, perBatch: Int = 50) async throws -> [ExportBatch] {
    let recording = RecordingExporter()
    var configuration = PipelineConfiguration(serviceName: "spill-tests")
    configuration.traces.maxExportBatchSize = perBatch
    configuration.logs.maxExportBatchSize = perBatch
    let pipeline = try TelemetryPipeline(configuration: configuration, exporter: recording)
    let tracer = pipeline.tracer(scope: "spill")
    let logger = pipeline.logger(scope: "spill")
    for i in 0..<batches * perBatch {
        if signal == .traces {
            let span = tracer.startSpan("GET /item/\(i)", kind: .server)
            span.setAttribute("spillway.load.seq", i)
            span.setAttribute("note", String(repeating: "é", count: i % 40))
            span.end()
        } else {
            logger.emit(severity: .warn, body: "audit \(i)") { $0.set("spillway.load.seq", i) }
        }
    }
    _ = await pipeline.shutdown(deadline: .now + .seconds(10))
    return recording.batches.sorted { $0.sequence < $1.sequence }
}

private func temporaryDirectory() -> String {
    TestDirectory.make("cspill")
}

private func files(in directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
}

/// Writes `batches` as frames into `directory`; returns the writer's io mode.
@discardableResult
private func spill(
    _ batches: [ExportBatch], to directory: String, io: Int32 = autoIO, durability: Int32 = Int32(CSP_DURABILITY_NONE),
    maxSegmentBytes: UInt64 = 0
) throws -> Int32 {
    var writer: OpaquePointer?
    let signal = UInt16(batches.first?.signal.rawValue ?? 1)
    let rc = directory.withCString { path -> Int32 in
        var options = csp_writer_options_t(
            directory: path, signal: signal, segment_sequence: 1, max_segment_bytes: maxSegmentBytes, max_segment_age_ns: 0,
            durability: durability, sync_interval_ns: 0, io: io, zstd_level: 1, flags: 0)
        return csp_writer_open(&options, &writer)
    }
    guard rc == 0, let writer else { throw POSIXError(POSIXErrorCode(rawValue: -rc) ?? .EIO) }
    for batch in batches {
        var info = csp_frame_info_t()
        let rc = batch.body.withUnsafeBytes {
            csp_writer_append(writer, $0.baseAddress, UInt32($0.count), UInt32(batch.recordCount), batch.sequence, &info)
        }
        #expect(rc == 0)
        #expect(info.durable == (durability == Int32(CSP_DURABILITY_ALWAYS) ? 1 : 0))
    }
    let mode = csp_writer_io(writer)
    #expect(csp_writer_close(writer) == 0)
    return mode
}

/// Every frame of one segment: (records, batch sequence, payload) or the error code.
private func read(_ path: String) -> (header: csp_segment_header_t, frames: [(Int32, csp_frame_t, [UInt8])])? {
    var reader: OpaquePointer?
    var header = csp_segment_header_t()
    guard csp_reader_open(path, &reader, &header) == 0, let reader else { return nil }
    defer { csp_reader_close(reader) }
    var out: [(Int32, csp_frame_t, [UInt8])] = []
    while true {
        var frame = csp_frame_t()
        let rc = csp_reader_next(reader, &frame)
        if rc == 0 { break }
        let payload = rc == 1 ? Array(UnsafeBufferPointer(start: frame.payload, count: Int(frame.uncompressed_length))) : []
        out.append((rc, frame, payload))
        if out.count > 100_000 { break }
    }
    return (header, out)
}

/// The independent reader, off the cooperative pool (``blockingCall(_:)``).
private func python(_ arguments: [String]) async throws -> (status: Int32, json: [String: Any]) {
    let (status, data) = try await blockingCall { try pythonBlocking(arguments) }
    let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? ["unparsed": String(decoding: data, as: UTF8.self)]
    return (status, json)
}

private func pythonBlocking(_ arguments: [String]) throws -> (Int32, Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("conformance/check_spill.py").path
    process.arguments = [testPython, script] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, data)
}

@Suite struct SegmentWriterTests {
    @Test(arguments: [TelemetrySignal.traces, .logs])
    func framesWrittenThroughIoUringAndPwriteAreIdenticalAndAnIndependentReaderAgrees(_ signal: TelemetrySignal) async throws {
        let batches = try await requestBodies(signal: signal, batches: 8)
        #expect(batches.count == 8)
        let uring = temporaryDirectory(), plain = temporaryDirectory()
        let uringMode = try spill(batches, to: uring, io: Int32(CSP_IO_AUTO), durability: Int32(CSP_DURABILITY_ALWAYS))
        let plainMode = try spill(batches, to: plain, io: Int32(CSP_IO_PWRITE), durability: Int32(CSP_DURABILITY_ALWAYS))
        #expect(uringMode == Int32(csp_uring_probe() != 0 ? CSP_IO_PWRITE : CSP_IO_URING), "AUTO picks io_uring where it works")
        #expect(plainMode == Int32(CSP_IO_PWRITE))
        #expect(files(in: uring) == ["00000000000000000001.spill"] && files(in: plain) == files(in: uring))

        let a = try #require(read(uring + "/00000000000000000001.spill"))
        let b = try #require(read(plain + "/00000000000000000001.spill"))
        #expect(a.header.signal == UInt16(signal.rawValue) && a.header.sequence == 1 && a.header.version == 1)
        #expect(a.frames.count == 8 && b.frames.count == 8)
        for (i, ((rcA, frameA, payloadA), (rcB, _, payloadB))) in zip(a.frames, b.frames).enumerated() {
            #expect(rcA == 1 && rcB == 1)
            #expect(payloadA == batches[i].body && payloadB == batches[i].body, "frame \(i) round-trips byte for byte")
            #expect(Int(frameA.records) == batches[i].recordCount && frameA.batch_sequence == batches[i].sequence)
        }
        // The segment header's creation time differs; every frame byte is identical.
        let bytesA = try Data(contentsOf: URL(fileURLWithPath: uring + "/00000000000000000001.spill"))
        let bytesB = try Data(contentsOf: URL(fileURLWithPath: plain + "/00000000000000000001.spill"))
        #expect(bytesA.dropFirst(32) == bytesB.dropFirst(32))

        // Python's zstandard + opentelemetry-proto read the same files.
        for directory in [uring, plain] {
            let (status, json) = try await python([directory])
            #expect(status == 0, "\(json)")
            let frames = json["frames"] as? [[String: Any]] ?? []
            #expect(frames.count == 8)
            for (i, frame) in frames.enumerated() {
                #expect(frame["records"] as? Int == batches[i].recordCount && frame["parsed_records"] as? Int == batches[i].recordCount)
                let crc = batches[i].body.withUnsafeBytes { csp_crc32c(0, $0.baseAddress, $0.count) }
                #expect(frame["payload_crc32c"] as? Int == Int(crc))
            }
        }
    }

    @Test func directWritesPadEveryFrameTo4KiBAndReadBackTheSame() async throws {
        let batches = try await requestBodies(signal: .traces, batches: 6)
        let directory = temporaryDirectory()
        try spill(batches, to: directory, io: Int32(CSP_IO_URING_DIRECT))
        let path = directory + "/00000000000000000001.spill"
        let frames = try #require(read(path)).frames
        #expect(frames.map(\.0) == Array(repeating: 1, count: 6), "PAD1 frames are skipped")
        #expect(zip(frames, batches).allSatisfy { $0.2 == $1.body })
        var st = stat()
        stat(path, &st)
        // /tmp takes O_DIRECT on ext4 and xfs; on a file system that refuses it the writer falls back.
        if Int(st.st_size) % 4096 == 0 {
            #expect(frames.allSatisfy { $0.1.offset % 4096 == 0 }, "every frame starts on a 4 KiB boundary")
        }
        let (status, json) = try await python([path])
        #expect(status == 0 && (json["frames"] as? [[String: Any]])?.count == 6, "\(json)")
    }

    @Test(arguments: [Int32(CSP_IO_AUTO), Int32(CSP_IO_PWRITE)])
    func segmentsRotateBySizeAreNamedInOrderAndPrivate(_ io: Int32) async throws {
        let batches = try await requestBodies(signal: .traces, batches: 10)
        let directory = temporaryDirectory() + "/traces"
        try spill(batches, to: directory, io: io, maxSegmentBytes: 4096)
        let names = files(in: directory)
        #expect(names.count >= 3 && names.allSatisfy { $0.hasSuffix(".spill") }, "\(names)")
        #expect(names == names.sorted() && names.first == "00000000000000000001.spill")
        var st = stat()
        stat(directory, &st)
        #expect(st.st_mode & 0o777 == 0o700)
        stat(directory + "/" + names[0], &st)
        #expect(st.st_mode & 0o777 == 0o600)
        let total = names.compactMap { read(directory + "/" + $0) }.flatMap(\.frames).filter { $0.0 == 1 }.map { Int($0.1.records) }.reduce(
            0, +)
        #expect(total == batches.map(\.recordCount).reduce(0, +))
    }

    /// The I/O choice is a configuration key (`SPILLWAY_SPILL_IO`), parsed in Swift: the C
    /// library reads no environment.
    @Test func theSpillIoKeyChoosesPwriteAndNamesItselfWhenWrong() throws {
        let directory = temporaryDirectory()
        let forced = try PipelineConfiguration.fromEnvironment(["SPILLWAY_SPILL_DIR": directory, "SPILLWAY_SPILL_IO": "pwrite"])
        #expect(forced.spill?.io == .pwrite)
        let automatic = try PipelineConfiguration.fromEnvironment(["SPILLWAY_SPILL_DIR": directory, "SPILLWAY_SPILL_IO": "AUTO"])
        #expect(automatic.spill?.io == .automatic)
        // A host-wide setting: without a spill store it is accepted and unused.
        #expect(try PipelineConfiguration.fromEnvironment(["SPILLWAY_SPILL_IO": "pwrite"]).spill == nil)
        let error = #expect(throws: ConfigurationError.self) {
            try PipelineConfiguration.fromEnvironment(["SPILLWAY_SPILL_DIR": directory, "SPILLWAY_SPILL_IO": "uring"])
        }
        #expect(error?.key == "SPILLWAY_SPILL_IO" && error?.allowed == "auto or pwrite")

        let spill = try #require(forced.spill)
        let writer = try SegmentWriter(directory: directory + "/traces", signal: .traces, firstSegment: 1, configuration: spill)
        #expect(!writer.usesIoUring)
        var chosen = spill
        chosen.io = .automatic
        let auto = try SegmentWriter(directory: directory + "/logs", signal: .logs, firstSegment: 1, configuration: chosen)
        #expect(auto.usesIoUring == (csp_uring_probe() == 0), "automatic: io_uring where the kernel allows it")
    }

    @Test(arguments: [Int32(CSP_IO_AUTO), Int32(CSP_IO_PWRITE)])
    func aFullDiskFailsTheAppendLeavesOnlyWholeFramesAndRecovers(_ io: Int32) async throws {
        guard getuid() == 0 else { return }  // mounting a tmpfs needs root (CI runs as root)
        // Incompressible payloads, so the 96 KiB left on the disk hold only a few frames.
        var generator = SystemRandomNumberGenerator()
        let batches = (0..<40).map { i in
            ExportBatch(
                signal: .logs, body: (0..<16_384).map { _ in UInt8.random(in: 0...255, using: &generator) }, recordCount: 1,
                sequence: UInt64(i))
        }
        let mountPoint = temporaryDirectory()
        guard mount("tmpfs", mountPoint, "tmpfs", 0, "size=128k") == 0 else {
            Issue.record("could not mount a tmpfs: errno \(errno)")
            return
        }
        defer { umount(mountPoint) }
        let ballast = mountPoint + "/ballast"
        FileManager.default.createFile(atPath: ballast, contents: Data(count: 32 * 1024))
        let directory = mountPoint + "/logs"
        var writer: OpaquePointer?
        _ = directory.withCString { path -> Int32 in
            var options = csp_writer_options_t(
                directory: path, signal: 2, segment_sequence: 1, max_segment_bytes: 0, max_segment_age_ns: 0,
                durability: Int32(CSP_DURABILITY_ALWAYS), sync_interval_ns: 0, io: io, zstd_level: 1, flags: 0)
            return csp_writer_open(&options, &writer)
        }
        var written = 0
        var failure: Int32 = 0
        for batch in batches {
            let rc = batch.body.withUnsafeBytes {
                csp_writer_append(writer, $0.baseAddress, UInt32($0.count), UInt32(batch.recordCount), batch.sequence, nil)
            }
            if rc != 0 {
                failure = rc
                break
            }
            written += 1
        }
        #expect(failure == -ENOSPC, "appends fail with ENOSPC once the disk is full (got \(failure) after \(written))")
        #expect(written > 0)
        guard failure == -ENOSPC else {
            csp_writer_close(writer)
            return
        }
        // Only whole frames are in the file.
        let open = try #require(files(in: directory).first)
        let frames = try #require(read(directory + "/" + open)).frames
        #expect(frames.count == written && frames.allSatisfy { $0.0 == 1 })
        // Space comes back: spilling resumes.
        unlink(ballast)
        let next = batches[written]
        let rc = next.body.withUnsafeBytes {
            csp_writer_append(writer, $0.baseAddress, UInt32($0.count), UInt32(next.recordCount), next.sequence, nil)
        }
        #expect(rc == 0)
        #expect(csp_writer_close(writer) == 0)
        #expect(read(directory + "/" + files(in: directory)[0])?.frames.count == written + 1)
    }
}

@Suite struct AsynchronousWriteTests {
    /// With io_uring and no sync due, an append returns while its write runs; when that write
    /// fails (a full disk), the next call says so and `csp_writer_take_lost` names the loss.
    @Test func aWriteThatFailsAfterItsAppendReturnedIsReportedAsLostAndCutFromTheFile() throws {
        guard getuid() == 0 else { return }
        let mountPoint = temporaryDirectory()
        guard mount("tmpfs", mountPoint, "tmpfs", 0, "size=128k") == 0 else {
            Issue.record("could not mount a tmpfs: errno \(errno)")
            return
        }
        defer { umount(mountPoint) }
        let directory = mountPoint + "/traces"
        var writer: OpaquePointer?
        _ = directory.withCString { path -> Int32 in
            var options = csp_writer_options_t(
                directory: path, signal: 1, segment_sequence: 1, max_segment_bytes: 0, max_segment_age_ns: 0,
                durability: Int32(CSP_DURABILITY_NONE), sync_interval_ns: 0, io: autoIO, zstd_level: 1, flags: 0)
            return csp_writer_open(&options, &writer)
        }
        var generator = SystemRandomNumberGenerator()
        var accepted = 0
        var failure: Int32 = 0
        for i in 0..<100 {
            let body = (0..<16_384).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let rc = body.withUnsafeBytes { csp_writer_append(writer, $0.baseAddress, UInt32($0.count), 3, UInt64(i), nil) }
            if rc != 0 {
                failure = rc
                break
            }
            accepted += 1
        }
        #expect(failure == -ENOSPC)
        var frames: UInt64 = 0, records: UInt64 = 0, segment: UInt64 = 0
        let lost = csp_writer_take_lost(writer, &frames, &records, &segment)
        if csp_writer_io(writer) == Int32(CSP_IO_URING) {
            #expect(lost == 1 && frames == 1 && records == 3 && segment == 1, "the frame in flight when the disk filled")
        }
        let name = try #require(files(in: directory).first)
        let onDisk = try #require(read(directory + "/" + name)).frames
        #expect(onDisk.allSatisfy { $0.0 == 1 }, "only whole frames stay")
        #expect(onDisk.count == accepted - Int(frames))
        csp_writer_close(writer)
    }
}

@Suite struct SegmentReaderTests {
    private func segment(batches: Int = 4) async throws -> (path: String, batches: [ExportBatch], bytes: [UInt8]) {
        let input = try await requestBodies(signal: .traces, batches: batches)
        let directory = temporaryDirectory()
        try spill(input, to: directory)
        let path = directory + "/00000000000000000001.spill"
        return (path, input, Array(try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    private func write(_ bytes: [UInt8], to path: String) {
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }

    @Test func aHeadersOnlyReaderCountsTheSameFramesWithoutDecompressing() async throws {
        let (path, batches, original) = try await segment()
        var bytes = original
        let frames = try #require(read(path)).frames
        bytes[Int(frames[1].1.offset) + 32 + 10] ^= 0xFF  // a payload CRC failure is still caught
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        var reader: OpaquePointer?
        #expect(csp_reader_open(path, &reader, nil) == 0)
        csp_reader_set_headers_only(reader, 1)
        var results: [Int32] = []
        var records = 0
        while true {
            var frame = csp_frame_t()
            let rc = csp_reader_next(reader, &frame)
            if rc == 0 { break }
            results.append(rc)
            if rc == 1 {
                records += Int(frame.records)
                #expect(frame.payload == nil)
            }
        }
        csp_reader_close(reader)
        #expect(results == [1, -EBADMSG, 1, 1])
        #expect(records == batches.map(\.recordCount).reduce(0, +) - batches[1].recordCount)
    }

    @Test func aCorruptPayloadIsSkippedItsRecordsCountedAndReadingGoesOn() async throws {
        let (path, batches, original) = try await segment()
        let frames = try #require(read(path)).frames
        var bytes = original
        bytes[Int(frames[1].1.offset) + 32 + 10] ^= 0xFF  // inside frame 1's payload
        write(bytes, to: path)
        let damaged = try #require(read(path)).frames
        #expect(damaged.map(\.0) == [1, -EBADMSG, 1, 1])
        #expect(Int(damaged[1].1.records) == batches[1].recordCount, "the intact header says what was lost")
        #expect(damaged[2].2 == batches[2].body)
    }

    @Test func aCorruptHeaderIsSkippedByScanningForTheNextGoodOne() async throws {
        let (path, batches, original) = try await segment()
        let frames = try #require(read(path)).frames
        var bytes = original
        bytes[Int(frames[2].1.offset) + 5] ^= 0x01  // frame 2's compressed length
        write(bytes, to: path)
        let damaged = try #require(read(path)).frames
        #expect(damaged.map(\.0) == [1, 1, -EBADMSG, 1])
        #expect(damaged[2].1.records == 0 && damaged[3].2 == batches[3].body)
    }

    @Test func aTornTailIsReportedAndRecoveryCutsIt() async throws {
        let (path, batches, original) = try await segment()
        let frames = try #require(read(path)).frames
        let open = path.replacingOccurrences(of: ".spill", with: ".open")
        unlink(path)
        write(Array(original[..<(Int(frames[3].1.offset) + 40)]), to: open)  // frame 3 cut 8 bytes into its payload
        #expect(try #require(read(open)).frames.map(\.0) == [1, 1, 1, -ENODATA])
        var result = csp_recovery_t()
        #expect(csp_recover(open, &result) == 0)
        #expect(result.frames == 3 && result.truncated_bytes == 40 && result.removed == 0)
        #expect(Int(result.records) == batches[0..<3].map(\.recordCount).reduce(0, +))
        #expect(!FileManager.default.fileExists(atPath: open))
        let recovered = try #require(read(path)).frames
        #expect(recovered.map(\.0) == [1, 1, 1], "the tail is clean")
    }

    /// Rewrites one 32-bit field of the frame header at `offset`, with a valid header CRC.
    private func forge(_ bytes: inout [UInt8], frameAt offset: Int, field: Int, _ value: UInt32) {
        for i in 0..<4 { bytes[offset + field + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
        let crc = bytes[offset..<offset + 28].withUnsafeBytes { csp_crc32c(0, $0.baseAddress, 28) }
        for i in 0..<4 { bytes[offset + 28 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
    }

    /// A valid header that claims 4 GiB once hid every later frame (92 of them) from every reader,
    /// and replay deleted the segment.
    @Test(arguments: [UInt32.max, 0xFFFF_FFF0, 1 << 30])
    func aLengthBeyondTheFileIsDamageAndTheFramesAfterItAreStillRead(_ length: UInt32) async throws {
        let (path, batches, original) = try await segment(batches: 6)
        let frames = try #require(read(path)).frames
        var bytes = original
        forge(&bytes, frameAt: Int(frames[1].1.offset), field: 4, length)
        write(bytes, to: path)
        let entries = try #require(read(path)).frames
        #expect(entries.map(\.0) == [1, -EBADMSG, 1, 1, 1, 1])
        #expect(
            entries[1].1.flags & CSP_FRAME_RECORDS_KNOWN != 0 && Int(entries[1].1.records) == batches[1].recordCount,
            "the header checks out: its count is what was lost")
        #expect(zip(entries.filter { $0.0 == 1 }, batches.enumerated().filter { $0.offset != 1 }).allSatisfy { $0.2 == $1.element.body })
        // Recovery of the same bytes as an .open segment keeps every intact frame.
        let open = path.replacingOccurrences(of: ".spill", with: ".open")
        unlink(path)
        write(bytes, to: open)
        var result = csp_recovery_t()
        #expect(csp_recover(open, &result) == 0)
        #expect(result.frames == 5 && result.damaged == 1 && result.truncated_bytes == 0)
        // The independent reader resynchronises too.
        let (status, json) = try await python([path])
        #expect(status == 1, "damage is an error")
        #expect((json["frames"] as? [[String: Any]])?.count == 5, "\(json)")
    }

    /// A header claiming 2,147,483,647 records once made the books report two billion spans.
    @Test func aRecordCountThePayloadCannotHoldIsDamageOfUnknownSize() async throws {
        let (path, batches, original) = try await segment(batches: 3)
        let frames = try #require(read(path)).frames
        var bytes = original
        forge(&bytes, frameAt: Int(frames[0].1.offset), field: 12, UInt32(Int32.max))
        write(bytes, to: path)
        let entries = try #require(read(path)).frames
        #expect(entries.map(\.0) == [-EBADMSG, 1, 1])
        #expect(entries[0].1.flags & CSP_FRAME_RECORDS_KNOWN == 0 && entries[0].1.records == 0, "unknown, never two billion")
        #expect(entries[1].2 == batches[1].body)
    }

    @Test func recoveryKeepsIntactFramesAfterDamageAndCutsOnlyTheTornTail() async throws {
        let (path, batches, original) = try await segment(batches: 5)
        let frames = try #require(read(path)).frames
        var bytes = original
        bytes[Int(frames[1].1.offset) + 40] ^= 0xFF  // frame 1's payload
        let open = path.replacingOccurrences(of: ".spill", with: ".open")
        unlink(path)
        write(Array(bytes[..<(Int(frames[4].1.offset) + 50)]), to: open)  // frame 4 torn
        var result = csp_recovery_t()
        #expect(csp_recover(open, &result) == 0)
        #expect(result.frames == 3 && result.damaged == 1 && result.truncated_bytes == 50)
        #expect(Int(result.records) == [0, 2, 3].map { batches[$0].recordCount }.reduce(0, +))
        #expect(try #require(read(path)).frames.map(\.0) == [1, -EBADMSG, 1, 1])
    }

    @Test func emptyShortAndForeignFilesAreRejectedWithoutCrashing() throws {
        let directory = temporaryDirectory()
        var reader: OpaquePointer?
        for (name, bytes) in [
            ("empty", [UInt8]()), ("short", Array("SPILLWAY".utf8)), ("foreign", [UInt8](repeating: 0x41, count: 4096)),
            ("version2", Array("SPILLWAY".utf8) + [2, 0, 1, 0] + [UInt8](repeating: 0, count: 20))
        ] {
            write(bytes, to: directory + "/" + name)
            #expect(csp_reader_open(directory + "/" + name, &reader, nil) == -EBADMSG, "\(name)")
        }
        // A crash inside the segment header: recovery removes the file.
        write(Array("SPILLWAY".utf8), to: directory + "/00000000000000000009.open")
        var result = csp_recovery_t()
        #expect(csp_recover(directory + "/00000000000000000009.open", &result) == 0 && result.removed == 1)
        #expect(csp_recover(directory + "/not-a-segment", &result) == -EINVAL)
    }

    @Test func hostileLengthsAndZstdBombsAreRefusedWithoutAllocating() throws {
        func header(magic: String, compressed: UInt32, uncompressed: UInt32, records: UInt32, payload: [UInt8]) -> [UInt8] {
            var h = Array(magic.utf8)
            for v in [compressed, uncompressed, records] { h += withUnsafeBytes(of: v.littleEndian, Array.init) }
            h += withUnsafeBytes(of: UInt64(7).littleEndian, Array.init)
            h += withUnsafeBytes(of: csp_crc32c(0, payload, payload.count).littleEndian, Array.init)
            h += withUnsafeBytes(of: csp_crc32c(0, h, 28).littleEndian, Array.init)
            return h + payload
        }
        var segmentHeader = Array("SPILLWAY".utf8) + [1, 0, 1, 0, 0, 0, 0, 0]
        segmentHeader += [UInt8](repeating: 0, count: 16)
        let directory = temporaryDirectory()
        // 1. A header that claims 4 GiB of compressed payload (beyond the file).
        let huge = segmentHeader + header(magic: "FRM1", compressed: .max, uncompressed: 10, records: 1, payload: [])
        FileManager.default.createFile(atPath: directory + "/huge", contents: Data(huge))
        #expect(try #require(read(directory + "/huge")).frames.map(\.0) == [-ENODATA], "nothing valid follows: a torn tail")
        // 2. A zstd bomb: 64 MiB of zeros compressed, while the header claims 100 bytes.
        let zeros = [UInt8](repeating: 0, count: 64 << 20)
        var compressed = [UInt8](repeating: 0, count: 1 << 20)
        let n = zeros.withUnsafeBytes { z in compressed.withUnsafeMutableBytes { c in zstdCompress(c, z) } }
        let bomb =
            segmentHeader + header(magic: "FRM1", compressed: UInt32(n), uncompressed: 100, records: 5, payload: Array(compressed[..<n]))
        FileManager.default.createFile(atPath: directory + "/bomb", contents: Data(bomb))
        let frames = try #require(read(directory + "/bomb")).frames
        #expect(frames.map(\.0) == [-EBADMSG] && frames[0].1.records == 5)
        // 3. An uncompressed length over the cap, with a payload that matches it.
        let over =
            segmentHeader
            + header(magic: "FRM1", compressed: UInt32(n), uncompressed: UInt32(64 << 20) + 1, records: 1, payload: Array(compressed[..<n]))
        FileManager.default.createFile(atPath: directory + "/over", contents: Data(over))
        #expect(try #require(read(directory + "/over")).frames.map(\.0) == [-EBADMSG])
    }
}

/// Compresses with the C writer's library: one zstd frame, content size recorded.
private func zstdCompress(_ output: UnsafeMutableRawBufferPointer, _ input: UnsafeRawBufferPointer) -> Int {
    Int(csp_zstd_compress(output.baseAddress, output.count, input.baseAddress, input.count, 1))
}

/// The python3 of `make deps`'s virtual environment (`.build/venv`), else the one on PATH.
let testPython: String = {
    let venv = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/venv/bin/python3").path
    return FileManager.default.isExecutableFile(atPath: venv) ? venv : "python3"
}()
