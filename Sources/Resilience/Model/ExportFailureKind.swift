#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The class of an export failure, which decides what happens to the batch.
///
/// | kind | what it covers | retried |
/// |---|---|---|
/// | ``throttled`` | HTTP 429; gRPC 8 with `RetryInfo` | yes, no sooner than `Retry-After` / `RetryInfo` |
/// | ``retryable`` | HTTP 502, 503, 504; gRPC 1, 4, 10, 11, 14, 15 | yes, the same |
/// | ``transport`` | connection refused or reset, timeout | yes |
/// | ``misconfigured`` | HTTP 401, 403, 404, 405, 407, 413, 415; gRPC 7, 12, 16; a non-OTLP answer; TLS | never (see below) |
/// | ``permanent`` | every other 4xx/5xx (400: the data was refused), a record too large | never: dropped |
/// | ``circuitOpen`` | the breaker did not let the batch through | not by the retry stage: the failure destination holds it |
/// | ``overflow`` | the ring was full | — (dropped at intake) |
/// | ``shutdown`` | still unexported when shutdown's deadline passed, or emitted after shutdown | — |
///
/// A ``misconfigured`` answer means the client's configuration is wrong: with a spill store the
/// batch is kept in its rejected area and the breaker opens until the configuration changes or a
/// probe succeeds. A ``permanent`` failure's batch is dropped, and a copy is kept in the spill
/// store's refused area.
///
/// Classification follows the OTLP specification ("Retryable Response Codes" over HTTP; over gRPC
/// `CANCELLED` 1, `DEADLINE_EXCEEDED` 4, `ABORTED` 10, `OUT_OF_RANGE` 11, `UNAVAILABLE` 14 and
/// `DATA_LOSS` 15 are retryable, `RESOURCE_EXHAUSTED` 8 only with `RetryInfo`; `PERMISSION_DENIED`
/// 7, `UNIMPLEMENTED` 12 and `UNAUTHENTICATED` 16 are misconfigurations). Errors that
/// are not ``OTLPExportError`` or ``ResilienceError`` are ``permanent``, except `CancellationError`
/// (``shutdown``).
public struct ExportFailureKind: Sendable, Hashable, CustomStringConvertible {
    /// The stable name, used as `error.type` in metrics.
    public let rawValue: String
    private init(_ rawValue: String) { self.rawValue = rawValue }

    /// The collector is overloaded and said so (HTTP 429).
    public static let throttled = ExportFailureKind("throttled")
    /// A transient server-side failure (HTTP 502, 503, 504).
    public static let retryable = ExportFailureKind("retryable")
    /// The request did not get an answer: refused, reset, timed out.
    public static let transport = ExportFailureKind("transport")
    /// The collector refused the request because of the client's configuration: credentials
    /// (401, 403, 407), the endpoint's path or method (404, 405), the request's size or encoding
    /// (413, 415), the endpoint is not an OTLP collector (an answer that is not OTLP), or TLS
    /// failed (an untrusted, expired or wrong-host certificate, a refused or missing client
    /// certificate, a collector that does not speak TLS on an `https://` endpoint).
    /// Sending it again unchanged would fail again; after the configuration is fixed it would not.
    public static let misconfigured = ExportFailureKind("misconfigured")
    /// Sending it again would fail again: the data itself was refused.
    public static let permanent = ExportFailureKind("permanent")
    /// The circuit breaker is open: the exporter was not called.
    public static let circuitOpen = ExportFailureKind("circuit_open")
    /// The ring was full.
    public static let overflow = ExportFailureKind("overflow")
    /// The pipeline shut down first.
    public static let shutdown = ExportFailureKind("shutdown")

    /// Whether the retry stage sends the batch again.
    public var isRetryable: Bool { self == .throttled || self == .retryable || self == .transport }

    public var description: String { rawValue }

    /// Classifies an error thrown by an exporter stage.
    public static func classify(_ error: any Error) -> ExportFailureKind {
        switch error {
        case let error as OTLPExportError:
            switch error.code {
            case .httpStatus:
                switch error.statusCode {
                case 429: return .throttled
                case 502, 503, 504: return .retryable
                case 401, 403, 404, 405, 407, 413, 415: return .misconfigured
                default: return .permanent
                }
            case .timeout, .connectionFailed, .connectionClosed: return .transport
            case .invalidResponse, .tlsFailed: return .misconfigured
            case .grpcStatus:
                // OTLP/gRPC: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS are
                // retryable; RESOURCE_EXHAUSTED only with RetryInfo (the collector says it can take it later).
                switch error.statusCode {
                case 1, 4, 10, 11, 14, 15: return .retryable
                case 8: return error.retryDelay == nil ? .permanent : .throttled
                case 7, 12, 16: return .misconfigured  // PERMISSION_DENIED, UNIMPLEMENTED, UNAUTHENTICATED
                default: return .permanent
                }
            default: return .permanent
            }
        case let error as ResilienceError:
            switch error.code {
            case .circuitOpen: return .circuitOpen
            case .shutDown: return .shutdown
            case .ringFull: return .overflow
            default: return .permanent
            }
        case is CancellationError:
            return .shutdown
        default:
            return .permanent
        }
    }
}

extension OTLPExportError {
    /// The `Retry-After` header (or a gRPC status's `RetryInfo`) as a delay from now: delta-seconds, or an HTTP-date in any of the
    /// three forms of RFC 9110 (IMF-fixdate, RFC 850, asctime). `nil` when absent or unreadable;
    /// a date in the past is a zero delay.
    ///
    /// - Parameter now: Unix time in seconds. - Default value: the system clock.
    public func retryAfterDelay(now: Double? = nil) -> Duration? {
        if let retryDelay { return retryDelay }
        guard let value = retryAfter, !value.isEmpty else { return nil }
        let trimmed = value.split(separator: " ", omittingEmptySubsequences: true)
        if trimmed.count == 1, let seconds = Int64(trimmed[0]) { return seconds >= 0 ? .seconds(seconds) : nil }
        guard let date = HTTPDate.parse(value) else { return nil }
        let current =
            now
            ?? {
                var ts = timespec()
                clock_gettime(CLOCK_REALTIME, &ts)
                return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
            }()
        let delta = Double(date) - current
        return delta <= 0 ? .zero : .milliseconds(Int64((delta * 1000).rounded(.up)))
    }
}

/// RFC 9110 section 5.6.7 dates, parsed without Foundation (which would pull ICU into every user's binary).
enum HTTPDate {
    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// Unix seconds, or `nil` if `text` is none of the three forms.
    static func parse(_ text: String) -> Int? {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "," }).map { $0.lowercased() }
        var day: Int?, month: Int?, year: Int?, clock: Substring?
        switch parts.count {
        case 4 where parts[1].contains("-"):  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
            guard parts[3] == "gmt" else { return nil }
            let dmy = parts[1].split(separator: "-")
            guard dmy.count == 3 else { return nil }
            day = Int(dmy[0])
            month = months.firstIndex(of: String(dmy[1]))
            clock = Substring(parts[2])
            if let y = Int(dmy[2]) { year = y < 100 ? (y < 70 ? 2000 + y : 1900 + y) : y }
        case 6:  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            guard parts[5] == "gmt" else { return nil }
            day = Int(parts[1])
            month = months.firstIndex(of: parts[2])
            year = Int(parts[3])
            clock = Substring(parts[4])
        case 5:  // asctime: Sun Nov  6 08:49:37 1994
            month = months.firstIndex(of: parts[1])
            day = Int(parts[2])
            clock = Substring(parts[3])
            year = Int(parts[4])
        default:
            return nil
        }
        guard let day, let month, let year, let clock else { return nil }
        let hms = clock.split(separator: ":").compactMap { Int($0) }
        guard hms.count == 3, (1...31).contains(day), (0...23).contains(hms[0]), (0...59).contains(hms[1]), (0...60).contains(hms[2]) else {
            return nil
        }
        var t = tm()
        t.tm_year = Int32(year - 1900)
        t.tm_mon = Int32(month)
        t.tm_mday = Int32(day)
        t.tm_hour = Int32(hms[0])
        t.tm_min = Int32(hms[1])
        t.tm_sec = Int32(hms[2])
        return Int(timegm(&t))
    }
}

extension ExportFailureKind {
    /// How an export error is told in a misconfiguration, a rejection line and the breaker's
    /// snapshot: `HTTP 401: <the collector's message>` for a collector's answer.
    static func describe(_ error: any Error) -> String {
        if let error = error as? OTLPExportError {
            if error.code == .grpcStatus, let status = error.statusCode { return "gRPC \(GRPCStatusName.name(status)): \(error.message)" }
            return error.statusCode.map { "HTTP \($0): \(error.message)" } ?? "\(error.code): \(error.message)"
        }
        return "\(error)"
    }
}
