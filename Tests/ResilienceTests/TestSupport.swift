import Foundation
import Logging
import Resilience
import ResilienceTesting
import Synchronization
import Testing

/// A pipeline exporting to a fresh receiver, with short delays so tests run fast. A full ring
/// blocks the emitting thread (up to 30 s) instead of dropping: a test that means "nothing lost"
/// must not confuse a slow machine with loss. Tests about drops pass `.dropNewest`.
/// The export timeout is 30 s: on a loaded machine (two CPU hogs beside the suite) a request
/// could pass 5 s, and its retry then reached the receiver twice: at-least-once, not loss.
func makePipeline(
    receiver: OTLPReceiver, ringCapacity: Int = 1 << 20, batchSize: Int = 512, overflow: OverflowPolicy = .block(upTo: .seconds(30)),
    processor: ProcessorKind = .batch, compression: OTLPExporterConfiguration.Compression = .none,
    limits: AttributeLimits = .init(), timeout: Duration = .seconds(30), retry: ExportRetryPolicy? = .fastForTests,
    circuitBreaker: CircuitBreakerPolicy? = CircuitBreakerPolicy(failureThreshold: 5, cooldown: .milliseconds(300)),
    handler: (any ExportErrorHandler)? = nil, routes: [ExportRoute] = [], scheduleDelay: Duration = .milliseconds(50)
) throws -> TelemetryPipeline {
    var configuration = PipelineConfiguration(serviceName: "spillway-tests", serviceVersion: "1.2.3")
    configuration.ringCapacity = ringCapacity
    configuration.overflowPolicy = overflow
    configuration.processor = processor
    configuration.traces.scheduleDelay = scheduleDelay
    configuration.logs.scheduleDelay = scheduleDelay
    configuration.traces.maxExportBatchSize = batchSize
    configuration.logs.maxExportBatchSize = batchSize
    configuration.exporter.endpoint = receiver.endpoint
    configuration.exporter.compression = compression
    configuration.exporter.timeout = timeout
    configuration.limits = limits
    configuration.retry = retry
    configuration.circuitBreaker = circuitBreaker
    configuration.exportErrorHandler = handler
    configuration.routes = routes
    return try TelemetryPipeline(configuration: configuration)
}

extension ExportRetryPolicy {
    /// Retries within a second, so fault tests run fast.
    static let fastForTests = ExportRetryPolicy(
        initialDelay: .milliseconds(20), maximumDelay: .milliseconds(100), multiplier: 2, jitter: .none, maximumElapsedTime: .seconds(1))
}

/// Collects events; safe from any thread.
final class EventLog: ExportErrorHandler, Sendable {
    private let events = Mutex<[ExportFailureEvent]>([])
    func handleExportError(_ event: ExportFailureEvent) { events.withLock { $0.append(event) } }
    var all: [ExportFailureEvent] { events.withLock { $0 } }
    /// Records reported as dropped, by reason.
    var droppedByReason: [DropReason: Int] {
        var result: [DropReason: Int] = [:]
        for event in all { if case .dropped(let reason) = event.outcome { result[reason, default: 0] += event.recordCount } }
        return result
    }
}

/// Runs `python3 script args…` off the cooperative pool, returning its exit status and output.
func runPython(_ arguments: [String]) async throws -> (status: Int32, output: String) {
    try await blockingCall { try runPythonBlocking(arguments) }
}

private func runPythonBlocking(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [testPython] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The repository root, found from this file's path.
let repositoryRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// A swift-log logger whose lines are kept (level, message, metadata), for tests about logs.
final class LogCapture: Sendable {
    private let storage = Mutex<[String]>([])
    var lines: [String] { storage.withLock { $0 } }
    var logger: Logger {
        var logger = Logger(label: "capture") { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            capture.storage.withLock { $0.append("\(event.level) \(event.message) \(event.metadata ?? [:])") }
        }
    }
}

/// The python3 of `make deps`'s virtual environment (`.build/venv`), else the one on PATH.
let testPython: String = {
    let venv = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/venv/bin/python3").path
    return FileManager.default.isExecutableFile(atPath: venv) ? venv : "python3"
}()

/// `make test-pwrite` runs the spill suites again with `SPILLWAY_SPILL_IO=pwrite`: the stores these
/// tests open then write with pwrite. The library reads no environment; the tests do.
let testIO: SpillConfiguration.IO = ProcessInfo.processInfo.environment["SPILLWAY_SPILL_IO"] == "pwrite" ? .pwrite : .automatic

/// Checks, at rest, that the pipeline's books balance against the ledger's own count of the
/// records it holds in memory (a record settled twice, or never, shows here).
func expectBooksBalance(_ pipeline: TelemetryPipeline, sourceLocation: SourceLocation = #_sourceLocation) {
    let problems = pipeline.unbalancedBooks()
    #expect(problems.isEmpty, "\(problems.joined(separator: "; ")): \(pipeline.stats())", sourceLocation: sourceLocation)
}

/// Shuts `pipeline` down (5 s deadline) and, when it finished in time (nothing left running),
/// checks its books against the ledger (``expectBooksBalance(_:sourceLocation:)``).
func shutDownCheckingBooks(_ pipeline: TelemetryPipeline, sourceLocation: SourceLocation = #_sourceLocation) async {
    let summary = await pipeline.shutdown(deadline: .now + .seconds(5))
    if !summary.deadlineExceeded { expectBooksBalance(pipeline, sourceLocation: sourceLocation) }
}
