import Foundation
import Resilience
import ResilienceTesting

/// A configuration exporting to `receiver` with short delays, so tests run fast.
func testConfiguration(_ receiver: OTLPReceiver, scheduleDelay: Duration = .milliseconds(30)) -> PipelineConfiguration {
    var configuration = PipelineConfiguration(serviceName: "integration-tests")
    configuration.ringCapacity = 1 << 20
    configuration.traces.scheduleDelay = scheduleDelay
    configuration.logs.scheduleDelay = scheduleDelay
    configuration.exporter.endpoint = receiver.endpoint
    configuration.retry = ExportRetryPolicy(
        initialDelay: .milliseconds(20), maximumDelay: .milliseconds(100), multiplier: 2, jitter: .none, maximumElapsedTime: .seconds(2))
    configuration.selfMetrics = false
    return configuration
}

/// A fresh temporary directory.
func temporaryDirectory() -> String {
    TestDirectory.make("integration")
}

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

struct TestFailure: Error, CustomStringConvertible {
    var description: String
}

/// The python3 of `make deps`'s virtual environment (`.build/venv`), else the one on PATH.
let testPython: String = {
    let venv = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/venv/bin/python3").path
    return FileManager.default.isExecutableFile(atPath: venv) ? venv : "python3"
}()
