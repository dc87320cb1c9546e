import ArgumentParser
import Logging
import Resilience
import ServiceLifecycle
import SpillwayIntegration
import Synchronization
import Tracing
import UnixSignals

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The child half of the lifecycle test: bootstraps swift-log and swift-distributed-tracing
/// through ``Spillway/bootstrap(configuration:exporter:logLevel:logging:tracing:metrics:)``
/// from a reloading configuration file, runs a `ServiceGroup` (pipeline, configuration source,
/// an emitter) with SIGTERM as its graceful-shutdown signal, and emits numbered spans and logs
/// until then. Prints `ready`, each reload, and at the end `emitted <n>` and the pipeline's books.
/// Hidden: a test tool, not a user command.
struct ServiceChild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "service-child", shouldDisplay: false)

    @Option var config: String

    func run() async throws {
        let source = try await TelemetryConfigurationSource(file: config, reloading: true, pollInterval: .seconds(3600)) {
            $0.traces.scheduleDelay = .milliseconds(20)
            $0.logs.scheduleDelay = .milliseconds(20)
            $0.selfMetrics = false
            $0.shutdownTimeout = .seconds(20)
        }
        let pipeline = try SpillwayIntegration.Spillway.bootstrap(configuration: source.configuration())
        source.attach(pipeline)
        source.onReload { outcome in
            switch outcome {
            case .success(let c): say("reloaded \(c.exporter.endpoint)")
            case .failure(let e): say("refused \(e)")
            }
        }
        let emitter = Emitter()
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: pipeline), .init(service: source), .init(service: emitter)],
                gracefulShutdownSignals: [.sigterm], logger: Logger(label: "service-child")))
        try await group.run()
        let stats = pipeline.stats()
        say("emitted \(emitter.count.load(ordering: .relaxed))")
        say(
            "books spans \(stats.spans.emitted) \(stats.spans.exported) \(stats.spans.droppedTotal) logs \(stats.logs.emitted) "
                + "\(stats.logs.exported) \(stats.logs.droppedTotal)"
        )
    }
}

/// Emits one span and one log record per iteration, numbered, until graceful shutdown, at most
/// about 1,000 of each a second: a steady load, not a flood. An unpaced loop outran the exports
/// of a machine starved by two CPU hogs beside the test suite (33,782 spans emitted, most of
/// them still in the ring at SIGTERM), and shutdown's deadline counted 2,149 as dropped
/// (`shutdown`): right books, but a load no graceful shutdown can be asked to finish.
final class Emitter: Service, Sendable {
    let count = Atomic<Int>(0)

    func run() async throws {
        let logger = Logger(label: "child.emitter")
        var seq = 0
        say("ready")
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            withSpan("op") { span in
                span.attributes["spillway.load.seq"] = seq
                logger.info("tick", metadata: ["spillway.load.seq": "\(seq)"])
            }
            seq += 1
            count.store(seq, ordering: .relaxed)
            if seq % 10 == 0 { try? await Task.sleep(for: .milliseconds(10)) }
        }
    }
}

private func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}
