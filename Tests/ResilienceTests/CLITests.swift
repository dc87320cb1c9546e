import Foundation
import Glibc
import Resilience
import ResilienceTesting
import Synchronization
import Testing

/// `spillway load` and the command line as a user meets them: interrupts, bad numbers, exit codes.
@Suite struct CLITests {
    /// SIGINT during `spillway load` once ended the process with no summary.
    @Test(.timeLimit(.minutes(3)))
    func anInterruptedLoadStopsEmittingSpillsWhatItEmittedPrintsTheBooksAndExits130() async throws {
        let directory = FileToolTests.temporaryDirectory() + "/spill"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FileToolTests.tool)
        process.arguments = [
            "load", "--endpoint", "http://127.0.0.1:9", "--spans", "10000000", "--rate", "20000", "--spill-dir", directory, "--quiet"
        ]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await Task.sleep(for: .milliseconds(1_500))
        process.interrupt()
        let data = try await blockingCall {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return data
        }
        let output = String(decoding: data, as: UTF8.self)
        #expect(process.terminationStatus == 130, "\(output)")
        #expect(output.contains("interrupted after") && output.contains("emitted:") && output.contains("dropped:  0 spans"), "\(output)")
        // Everything it emitted is on disk: the books line says so, and inspect counts it.
        let emitted = output.split(separator: "\n").first { $0.hasPrefix("emitted:") }.flatMap {
            $0.split(separator: " ").dropFirst().first
        }.flatMap { Int($0) }
        let inspect = try await FileToolTests.run(["inspect", directory])
        let emittedCount = try #require(emitted)
        #expect(emittedCount > 1_000 && inspect.output.contains("\(grouped(emittedCount)) records"), "\(inspect.output)")
    }

    @Test func badNumbersAreUsageErrorsNeverTraps() async throws {
        for arguments in [
            ["load", "--spans", "9223372036854775807"], ["load", "--spans", "-5"], ["load", "--rate", "nan"], ["load", "--threads", "0"],
            ["replay", "x", "--give-up-after", "0"], ["demo", "--faults", "2"], ["receive", "--fail", "999"],
            ["faults", "--report", "/nonexistent/dir/table.md"]
        ] {
            let result = try await FileToolTests.run(
                arguments + ["--endpoint", "http://127.0.0.1:9"].filter { _ in arguments[0] == "load" })
            #expect(result.status == 64, "\(arguments): exit \(result.status) \(result.error)")
            #expect(result.error.contains("Error: --"), "\(arguments): \(result.error)")
            #expect(result.error.contains("Usage: spillway \(arguments[0])"), "the subcommand's usage: \(result.error)")
        }
    }
}

private func grouped(_ n: Int) -> String {
    let digits = String(n)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return out
}
