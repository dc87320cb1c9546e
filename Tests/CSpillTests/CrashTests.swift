import CSpill
import Foundation
import Glibc
import ResilienceTesting
import Testing

/// A writer killed with SIGKILL at random moments: after recovery, every frame it reported
/// durable is there and valid, and every segment ends cleanly.
@Suite struct CrashTests {
    private let tool = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug/spillway").path

    @Test(.timeLimit(.minutes(2)))
    func everyFrameReportedDurableSurvivesASIGKILLAtARandomMoment() throws {
        try #require(FileManager.default.isExecutableFile(atPath: tool), "build the tool first (swift build): \(tool)")
        var generator = SystemRandomNumberGenerator()
        var totalDurable = 0
        var totalTruncated: UInt64 = 0
        for run in 0..<20 {
            let root = TestDirectory.make("crash")
            let directory = root + "/logs"
            let child = Process()
            child.executableURL = URL(fileURLWithPath: tool)
            child.arguments = ["spill-child", "--dir", directory, "--io", run % 2 == 0 ? "auto" : "pwrite"]
            let output = Pipe()
            child.standardOutput = output
            try child.run()
            // The kill comes at a random moment after the child's first durable frame, not after
            // its start: on a loaded machine a start can take longer than the whole random window.
            // (`availableData` returns with the first write, or empty at the child's exit.)
            let reader = output.fileHandleForReading
            let first = reader.availableData
            usleep(UInt32.random(in: 0...200_000, using: &generator))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            let lines = String(decoding: first + reader.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
            let durable = Set(
                lines.compactMap { line -> Int? in
                    let parts = line.split(separator: " ")
                    return parts.count == 4 && parts[0] == "durable" ? Int(parts[1]) : nil
                })
            totalDurable += durable.count

            var found: [Int: [UInt8]] = [:]
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
            for name in names where name.hasSuffix(".open") {
                var result = csp_recovery_t()
                #expect(csp_recover(directory + "/" + name, &result) == 0, "run \(run): recovering \(name)")
                totalTruncated += result.truncated_bytes
            }
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted() {
                #expect(name.hasSuffix(".spill"), "run \(run): \(name) left after recovery")
                var reader: OpaquePointer?
                guard csp_reader_open(directory + "/" + name, &reader, nil) == 0 else {
                    Issue.record("run \(run): \(name) unreadable")
                    continue
                }
                while true {
                    var frame = csp_frame_t()
                    let rc = csp_reader_next(reader, &frame)
                    if rc == 0 { break }
                    #expect(rc == 1, "run \(run): \(name) has damage at \(frame.offset) after recovery (\(rc))")
                    if rc != 1 { break }
                    found[Int(frame.batch_sequence)] = Array(
                        UnsafeBufferPointer(start: frame.payload, count: Int(frame.uncompressed_length)))
                }
                csp_reader_close(reader)
            }
            let missing = durable.subtracting(found.keys)
            #expect(missing.isEmpty, "run \(run): durable frames missing after recovery: \(missing.sorted().prefix(10))")
            for (sequence, payload) in found {
                #expect(payload.starts(with: Array("frame \(sequence) ".utf8)), "run \(run): frame \(sequence) holds another frame's bytes")
            }
            try? FileManager.default.removeItem(atPath: root)
        }
        #expect(totalDurable > 0, "the children wrote something before they were killed")
        print("crash test: 20 SIGKILLs, \(totalDurable) durable frames all recovered, \(totalTruncated) torn bytes truncated")
    }
}
