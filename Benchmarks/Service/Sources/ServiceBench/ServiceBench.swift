// The figure a user looks at first: a Hummingbird 2 service with `TracingMiddleware` and one
// `logger.info` per request, run with no telemetry back end, with Spillway, or with swift-otel, so
// that `Benchmarks/Service/run.sh` (`make bench-service`) can load it with wrk and compare.
//
//     ServiceBench --backend none|spillway|swift-otel [--port 8080]
//
// The collector is `OTEL_EXPORTER_OTLP_ENDPOINT` (http/protobuf) for both back ends. At SIGTERM the
// service stops taking requests, the back end flushes, and the process prints one line:
// `served=N` and, for Spillway, its books (`emitted`, `exported`, `dropped`).
import Foundation
import Hummingbird
import Logging
import OTel
import ServiceLifecycle
import SpillwayIntegration
import Synchronization
import Tracing

/// Counts the requests the router saw, so that delivery is measured against what was served.
struct CountingMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        served.add(1, ordering: .relaxed)
        return try await next(request, context)
    }
}

/// The process-wide count of served requests.
let served = Atomic<Int>(0)

@main struct ServiceBench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        func option(_ name: String, _ fallback: String) -> String {
            arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } ?? fallback
        }
        let backend = option("--backend", "none")
        func usage(_ message: String) -> Never {
            FileHandle.standardError.write(Data("ServiceBench: \(message)\n".utf8))
            exit(2)
        }
        guard let port = Int(option("--port", "8080")), (0...65_535).contains(port) else {
            usage("--port: a port number from 0 to 65535, got \(option("--port", "8080"))")
        }
        let endpoint = ProcessInfo.processInfo.environment["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? "http://127.0.0.1:4318"

        var services: [any Service] = []
        var books: () -> String = { "" }
        switch backend {
        case "none":
            // What an application without a telemetry back end runs: swift-log's no-op handler (the
            // default would print every record to stdout) and swift-distributed-tracing's NoOpTracer.
            LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
        case "spillway":
            var configuration = try PipelineConfiguration.fromEnvironment()
            configuration.serviceName = "service-bench"
            let pipeline = try Spillway.bootstrap(configuration: configuration)
            services.append(pipeline)
            books = {
                let stats = pipeline.stats()
                func line(_ name: String, _ signal: PipelineStats.Signal) -> String {
                    " \(name): emitted=\(signal.emitted) exported=\(signal.exported) dropped=\(signal.droppedTotal)"
                }
                return line("spans", stats.spans) + line("logs", stats.logs)
            }
        case "swift-otel":
            var configuration = OTel.Configuration.default
            configuration.serviceName = "service-bench"
            configuration.traces.otlpExporter.protocol = .httpProtobuf
            configuration.traces.otlpExporter.endpoint = endpoint + "/v1/traces"
            configuration.logs.otlpExporter.protocol = .httpProtobuf
            configuration.logs.otlpExporter.endpoint = endpoint + "/v1/logs"
            configuration.metrics.enabled = false
            services.append(try OTel.bootstrap(configuration: configuration))
        default:
            usage("--backend: none, spillway or swift-otel; got \(backend)")
        }

        // Made after the back end bootstrapped swift-log: a logger made before would keep the default handler.
        let logger = Logger(label: "service-bench")
        let router = Router()
        router.middlewares.add(CountingMiddleware())
        router.middlewares.add(TracingMiddleware())
        router.get("/cart") { _, context in
            context.logger.info("cart viewed", metadata: ["cart.items": "3"])
            return "ok"
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        // A group stops its services last to first: the application first, then the back end, which
        // flushes what the application emitted.
        let group = ServiceGroup(
            services: services + [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        print("served=\(served.load(ordering: .relaxed))" + books())
    }
}
