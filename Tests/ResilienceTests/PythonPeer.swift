import Foundation
import Synchronization

/// A Python test peer (a server from `Tests/…`) running beside a test: started at once, its
/// output collected as it comes. Every wait has a deadline; the process is killed at the latest
/// when ``finish(timeout:)`` gives up.
final class PythonPeer: Sendable {
    private let process: Process
    private final class Output: Sendable { let text = Mutex("") }
    private let output = Output()

    init(script: String, arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: testPython)
        process.arguments = [repositoryRoot.path + "/" + script] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { output.text.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        }
        try process.run()
        self.process = process
    }

    deinit { if process.isRunning { process.terminate() } }

    var text: String { output.text.withLock { $0 } }

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
