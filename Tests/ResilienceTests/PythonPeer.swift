import Foundation
import ResilienceTesting

/// A Python test peer (a server from `Tests/…`) running beside a test: started at once, its
/// output kept in a file. Every wait has a deadline; the process is killed at the latest
/// when ``finish(timeout:)`` gives up.
final class PythonPeer: Sendable {
    private let process: Process
    /// The peer writes into a file, read when asked: no dispatch source on a pipe (a
    /// `readabilityHandler` crashed libdispatch's event loop once in a fresh-clone run).
    private let outputPath: String

    init(script: String, arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: testPython)
        process.arguments = [repositoryRoot.path + "/" + script] + arguments
        outputPath = TestDirectory.make("peer") + "/peer.log"
        guard FileManager.default.createFile(atPath: outputPath, contents: nil), let output = FileHandle(forWritingAtPath: outputPath)
        else { throw PeerError(message: "cannot write \(outputPath)") }
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try? output.close()  // the child holds its own descriptor
        self.process = process
    }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(atPath: outputPath)
    }

    var text: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// The port from the peer's first line (`port N`); waits up to 10 s for it.
    func port() throws -> Int {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let line = text.split(separator: "\n").first, line.hasPrefix("port "), let port = Int(line.dropFirst(5)) { return port }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw PeerError(message: "no port from the peer: \(text)")
    }

    /// Waits for the peer to exit (killing it after `timeout`); its status and everything it printed.
    func finish(timeout: Duration) async throws -> (status: Int32, output: String) {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            return (-1, text + "\n(killed after \(timeout))")
        }
        try await Task.sleep(for: .milliseconds(50))  // the last output
        return (process.terminationStatus, text)
    }

    struct PeerError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}
