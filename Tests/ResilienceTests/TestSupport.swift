import Foundation
import Resilience
import ResilienceTesting

/// A pipeline exporting to a fresh receiver, with short delays so tests run fast.
func makePipeline(
    receiver: OTLPReceiver, ringCapacity: Int = 1 << 20, batchSize: Int = 512, overflow: OverflowPolicy = .dropNewest,
    processor: ProcessorKind = .batch, compression: OTLPExporterConfiguration.Compression = .none,
    limits: AttributeLimits = .init(), timeout: Duration = .seconds(5)
) throws -> TelemetryPipeline {
    var configuration = PipelineConfiguration(serviceName: "spillway-tests", serviceVersion: "1.2.3")
    configuration.ringCapacity = ringCapacity
    configuration.overflowPolicy = overflow
    configuration.processor = processor
    configuration.traces.scheduleDelay = .milliseconds(50)
    configuration.logs.scheduleDelay = .milliseconds(50)
    configuration.traces.maxExportBatchSize = batchSize
    configuration.logs.maxExportBatchSize = batchSize
    configuration.exporter.endpoint = receiver.endpoint
    configuration.exporter.compression = compression
    configuration.exporter.timeout = timeout
    configuration.limits = limits
    return try TelemetryPipeline(configuration: configuration)
}

/// Runs `python3 script args…`, returning its exit status and output.
func runPython(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The repository root, found from this file's path.
let repositoryRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
