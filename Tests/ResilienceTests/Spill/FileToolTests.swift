import Foundation
import Resilience
import ResilienceTesting
import Testing

/// The `spillway` file tools on a real spill directory: load against a dead endpoint, then
/// inspect, verify, decode, and replay into the embedded receiver.
@Suite struct FileToolTests {
    private let tool = repositoryRoot.appendingPathComponent(".build/debug/spillway").path

    private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(.timeLimit(.minutes(2)))
    func aLoadAgainstADeadEndpointEndsOnDiskAndTheToolsReadVerifyAndReplayIt() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: tool), "build the tool first: \(tool)")
        let directory = NSTemporaryDirectory() + "spillway-tools-\(UInt32.random(in: 0...UInt32.max))"
        let load = try run(["load", "--endpoint", "http://127.0.0.1:9", "--spans", "20000", "--logs", "2000", "--spill-dir", directory, "--quiet"])
        #expect(load.status == 0, "load exits 0 when everything is on disk: \(load.output)")

        let inspect = try run(["inspect", directory])
        #expect(inspect.status == 0 && inspect.output.contains("total: 2 segments") && inspect.output.contains("22000 records"), "\(inspect.output)")
        let verify = try run(["verify", directory])
        #expect(verify.status == 0 && verify.output.contains("0 problems"), "\(verify.output)")
        let decode = try run(["decode", directory + "/logs"])
        let lines = decode.output.split(separator: "\n")
        #expect(lines.count == 2000)
        let first = try #require(lines.first.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        #expect(first["body"] as? String == "load record" && first["signal"] as? String == "logs")

        // OTLP/JSON, read back by the official protobuf JSON parser.
        let otlpJSON = try run(["decode", directory, "--format", "otlp-json"])
        #expect(otlpJSON.status == 0)
        let jsonFile = directory + "/requests.jsonl"
        try otlpJSON.output.write(toFile: jsonFile, atomically: true, encoding: .utf8)
        let parsed = try runPython([repositoryRoot.appendingPathComponent("Tests/conformance/check_otlp_json.py").path, jsonFile])
        #expect(parsed.status == 0 && parsed.output.contains("\"spans\": 20000") && parsed.output.contains("\"logs\": 2000"), "\(parsed.output)")
        try FileManager.default.removeItem(atPath: jsonFile)

        // A flipped byte: verify fails, and says where.
        let segment = directory + "/traces/" + (try FileManager.default.contentsOfDirectory(atPath: directory + "/traces").first { $0.hasSuffix(".spill") } ?? "")
        let copy = segment + ".bak"
        try FileManager.default.copyItem(atPath: segment, toPath: copy)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: segment)))
        bytes[bytes.count / 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        let damaged = try run(["verify", directory])
        #expect(damaged.status == 1 && damaged.output.contains("damaged frame"), "\(damaged.output)")
        try FileManager.default.removeItem(atPath: segment)
        try FileManager.default.moveItem(atPath: copy, toPath: segment)

        let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
        let replay = try run(["replay", directory, "--endpoint", receiver.endpoint, "--quiet"])
        #expect(replay.status == 0, "\(replay.output)")
        #expect(receiver.sequenceReport(expected: 20_000).missing == 0)
        #expect(receiver.sequenceReport(expected: 2_000, signal: .logs).missing == 0)
        let left = ["traces", "logs"].flatMap { (try? FileManager.default.contentsOfDirectory(atPath: directory + "/" + $0)) ?? [] }
        #expect(left.filter { $0.hasSuffix(".spill") }.isEmpty, "replay deletes what was acknowledged: \(left)")
        try await receiver.stop()
    }
}
