// The shapes every emit benchmark measures, in one place: the Benchmarks package (`make bench`) and,
// through a symbolic link, EmitInstructions (`make bench-instructions`) time and count the same code.
// Each is `@inline(never)`: callgrind attributes a call's cost to one record, and the no-op
// baselines pay the same call.
import Logging
import Resilience
import Tracing

/// A native span with 5 attributes (2 strings, 2 integers, a boolean).
@inline(never)
func emitSpan(_ tracer: Resilience.Tracer, _ i: Int) {
    let span = tracer.startSpan("GET /api/cart", kind: .server)
    span.setAttribute("http.request.method", "GET")
    span.setAttribute("http.route", "/api/cart")
    span.setAttribute("http.response.status_code", 200)
    span.setAttribute("user.id", i)
    span.setAttribute("cache.hit", true)
    span.end()
}

/// `withSpan` and the same 5 attributes through swift-distributed-tracing, against any back end
/// (`SpillwayTracer`, `NoOpTracer`: the API's own cost, swift-otel's tracer).
@inline(never)
func emitWithSpan(_ tracer: some Tracing.Tracer, _ i: Int) {
    tracer.withSpan("GET /api/cart", ofKind: .server) { span in
        span.attributes["http.request.method"] = "GET"
        span.attributes["http.route"] = "/api/cart"
        span.attributes["http.response.status_code"] = 200
        span.attributes["user.id"] = i
        span.attributes["cache.hit"] = true
    }
}

/// swift-log `info` with 2 metadata values.
@inline(never)
func emitInfo(_ logger: Logger, _ i: Int) {
    logger.info("user signed in", metadata: ["user.id": "\(i)", "tenant": "acme"])
}

/// What a server framework does per request: a copy of its logger with the request's id set as
/// metadata (Hummingbird, Vapor), then one `info` with 1 metadata value.
@inline(never)
func emitRequestInfo(_ logger: Logger, _ i: Int) {
    var requestLogger = logger
    requestLogger[metadataKey: "request.id"] = .stringConvertible(i)
    requestLogger.info("user signed in", metadata: ["tenant": "acme"])
}

/// A swift-log handler that takes every record at `info` and drops it: swift-log's own cost.
/// (`SwiftLogNoOpLogHandler` says `critical`, so `info` would stop before the metadata is built.)
struct DiscardingLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { discard(event) }
}

/// Keeps a value alive to here without the optimiser seeing through it.
@inline(never)
func discard<T>(_ value: T) {}
