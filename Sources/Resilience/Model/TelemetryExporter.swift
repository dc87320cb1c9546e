/// Sends export requests somewhere: the one protocol of every exporter stage.
///
/// An exporter receives ``ExportBatch``es whose ``ExportBatch/body`` is a complete, serialized
/// `ExportTraceServiceRequest`, `ExportLogsServiceRequest` or `ExportMetricsServiceRequest`, and returns when the destination
/// acknowledged it, or throws. Middleware wraps an exporter and is one.
///
/// Implementers must be safe to call concurrently (up to `maxConcurrentExports` calls per signal)
/// and must return or throw within the batch's export timeout.
public protocol TelemetryExporter: Sendable {
    /// A short name for stats, logs and error reports (`otlp_http`).
    var name: String { get }
    /// Sends one request. Returns what the destination said about it; throws if it was not accepted.
    func export(_ batch: ExportBatch) async throws -> ExportResponse
    /// Stops: releases connections. Called once, by the pipeline's shutdown.
    func shutdown() async
}

extension TelemetryExporter {
    public func shutdown() async {}
}

/// The three OTLP signals Spillway carries.
///
/// Spans and log records are emitted one by one through the ring; metrics are aggregated in
/// memory and collected into one request every export interval (``MetricsConfiguration``).
public enum TelemetrySignal: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Spans (`/v1/traces`).
    case traces = 1
    /// Log records (`/v1/logs`).
    case logs = 2
    /// Metric data points (`/v1/metrics`): a request's records are its data points.
    case metrics = 3

    public var description: String {
        switch self {
        case .traces: "traces"
        case .logs: "logs"
        case .metrics: "metrics"
        }
    }
}

/// One export request: the exact bytes that go on the wire, and what they hold.
///
/// With a spill directory, the ring file keeps a batch's records until the batch is delivered, on
/// disk or dropped: until the last copy of the batch made by the pipeline is gone. An exporter or
/// stage that keeps a batch after its `export` returned holds that ring space as long as it keeps it.
public struct ExportBatch: Sendable {
    /// Which signal the request carries.
    public var signal: TelemetrySignal
    /// A serialized `ExportTraceServiceRequest`, `ExportLogsServiceRequest` or `ExportMetricsServiceRequest`.
    public var body: [UInt8]
    /// How many spans, log records or metric data points it holds.
    public var recordCount: Int
    /// Monotonic within the pipeline and signal.
    public var sequence: UInt64
    /// The ``ExportRoute`` its records were routed to; `nil` for the default route.
    public var route: String?
    /// The collector of a pool this part of a batch was split off for (``TraceAffineSplitter``).
    var collector: Int?
    /// With a file-backed ring: its records' space stays held until every copy of the batch is gone (`RingHold`).
    var ringHold: (any AnyObject & Sendable)?

    /// The batch without its hold on the ring: for a copy kept after the export (events, recordings).
    package var detachedFromRing: ExportBatch {
        var copy = self
        copy.ringHold = nil
        return copy
    }

    /// A batch; `body` must be a serialized request of `signal` holding `recordCount` records.
    public init(signal: TelemetrySignal, body: [UInt8], recordCount: Int, sequence: UInt64, route: String? = nil) {
        self.signal = signal
        self.body = body
        self.recordCount = recordCount
        self.sequence = sequence
        self.route = route
    }
}

/// What the destination said about an accepted request.
public struct ExportResponse: Sendable, Hashable {
    /// Records the destination rejected (OTLP `partial_success`); 0 when all were accepted.
    public var rejectedRecords: Int
    /// The destination's message with a partial success, if any.
    public var errorMessage: String
    /// Set by the pipeline's failure destination: the batch went to the spill store, not to the collector.
    var custody: Custody?

    /// Where the failure destination put a batch that did not reach the collector.
    enum Custody: Sendable, Hashable {
        /// Spilled, to be replayed when the collector answers.
        case spilled(segment: String)
        /// Kept in the rejected area: the collector refused the client's configuration.
        case rejected(segment: String)
    }

    public init(rejectedRecords: Int = 0, errorMessage: String = "") {
        self.rejectedRecords = rejectedRecords
        self.errorMessage = errorMessage
    }

    public static let accepted = ExportResponse()

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.rejectedRecords == rhs.rejectedRecords && lhs.errorMessage == rhs.errorMessage
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(rejectedRecords)
        hasher.combine(errorMessage)
    }
}

/// Why an OTLP export failed.
public struct OTLPExportError: Error, Sendable, Hashable, CustomStringConvertible {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code && lhs.statusCode == rhs.statusCode && lhs.retryAfter == rhs.retryAfter && lhs.message == rhs.message
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(statusCode)
        hasher.combine(retryAfter)
        hasher.combine(message)
    }

    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case httpStatus, timeout, connectionFailed, connectionClosed, invalidResponse, tlsFailed, grpcStatus
        }
        private let base: Base
        /// The collector answered with a non-2xx status.
        public static let httpStatus = Code(base: .httpStatus)
        /// No complete answer within the timeout.
        public static let timeout = Code(base: .timeout)
        /// The connection could not be made (refused, unreachable).
        public static let connectionFailed = Code(base: .connectionFailed)
        /// The connection closed or reset before the answer was complete.
        public static let connectionClosed = Code(base: .connectionClosed)
        /// The answer was not HTTP, or its body was not an OTLP response.
        public static let invalidResponse = Code(base: .invalidResponse)
        /// The TLS handshake failed for a reason that repeats: the collector's certificate is not
        /// trusted, expired or for another host; it refused the client certificate or wants one;
        /// or it does not speak TLS. The message names which.
        public static let tlsFailed = Code(base: .tlsFailed)
        /// The collector answered a gRPC call with a status other than `OK`
        /// (``OTLPExportError/statusCode`` holds the gRPC status code).
        public static let grpcStatus = Code(base: .grpcStatus)
        public var description: String { "\(base)" }
    }

    public var code: Code
    /// The HTTP status, for ``Code/httpStatus``; the gRPC status code, for ``Code/grpcStatus``.
    public var statusCode: Int?
    /// The `Retry-After` header, as sent (delta-seconds or an HTTP date).
    public var retryAfter: String?
    /// What went wrong, in words: the collector's message or the transport error.
    public var message: String
    /// The connection failed before any byte of an answer arrived.
    var beforeAnswer = false
    /// The request certainly did not reach the collector's processing (a gRPC call above a
    /// GOAWAY's last stream, or one whose frames were never sent): sending it again cannot duplicate.
    var unprocessed = false
    /// The delay of a gRPC `google.rpc.RetryInfo` in the status details: a floor, as `Retry-After`.
    var retryDelay: Duration?

    public init(code: Code, statusCode: Int? = nil, retryAfter: String? = nil, message: String) {
        self.code = code
        self.statusCode = statusCode
        self.retryAfter = retryAfter
        self.message = message
    }

    public var description: String {
        var s = "OTLP export failed: \(code)"
        if let statusCode { s += code == .grpcStatus ? " \(GRPCStatusName.name(statusCode))" : " \(statusCode)" }
        if let retryDelay { s += " (RetryInfo: \(retryDelay))" }
        if let retryAfter { s += " (Retry-After: \(retryAfter))" }
        if !message.isEmpty { s += ": \(message)" }
        return s
    }
}

/// The names of gRPC status codes, for messages.
enum GRPCStatusName {
    static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"
    ]
    static func name(_ code: Int) -> String { names.indices.contains(code) ? "\(code) \(names[code])" : "\(code)" }
}
