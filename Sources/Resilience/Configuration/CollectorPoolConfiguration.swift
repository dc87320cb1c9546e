/// Several collectors behind one exporter, and how requests are spread over them.
///
/// Every endpoint takes the exporter's other settings (protocol, headers, compression, timeout,
/// TLS, each signal's own included): only the address differs. Each endpoint has its own
/// circuit breaker, with the pipeline's ``PipelineConfiguration/circuitBreaker`` policy (the
/// default policy when that is `nil`); the pipeline's single breaker is not used. When every
/// endpoint's breaker is open, batches go to the spill store (or wait in memory without one),
/// as they do when a single collector is down.
///
/// ```swift
/// // Three gateway collectors running tail sampling: every span of a trace to the same one.
/// configuration.exporter.pool = CollectorPoolConfiguration(
///     endpoints: ["http://gw-a:4318", "http://gw-b:4318", "http://gw-c:4318"], mode: .balanceByTrace)
/// ```
///
/// - Environment variables: `SPILLWAY_EXPORTER_OTLP_POOL_ENDPOINTS` (comma-separated),
///   `SPILLWAY_EXPORTER_OTLP_POOL_MODE` (`failover` | `balance-by-trace`). Both need a restart.
public struct CollectorPoolConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// How requests are spread over the endpoints.
    public enum Mode: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// In order: every request to the first endpoint whose breaker is closed. When the first
        /// one's breaker opens, traffic moves to the next; when its probe succeeds, back to it.
        case failover
        /// By trace id, rendezvous hashing over the endpoints whose breakers are closed: every span
        /// of a trace, and every log record carrying that trace id, reaches the same collector —
        /// what a pool of tail-sampling gateways needs. A batch is split by trace. When an endpoint
        /// fails only its share of the traces moves; when it returns, that share moves back. Every
        /// process configured with the same endpoint names maps every trace the same way. Log
        /// records without a trace id go with their batch, batches spread over the endpoints.
        case balanceByTrace = "balance-by-trace"

        public var description: String { rawValue }
    }

    /// The collectors' base URLs (as ``OTLPExporterConfiguration/endpoint``), in failover order.
    /// At least one, at most ``maximumEndpoints``, no two alike.
    public var endpoints: [String]
    /// How requests are spread. - Default value: ``Mode/failover``.
    public var mode: Mode

    /// A pool of `endpoints`.
    public init(endpoints: [String], mode: Mode = .failover) {
        self.endpoints = endpoints
        self.mode = mode
    }

    /// At most this many endpoints in a pool.
    public static let maximumEndpoints = 64

    public var description: String { "\(mode) over \(endpoints.joined(separator: ", "))" }
}

extension OTLPExporterConfiguration {
    /// The configuration of the pool's endpoint `endpoint`: this one, with that address and no pool.
    func member(_ endpoint: String) -> OTLPExporterConfiguration {
        var member = self
        member.endpoint = endpoint
        member.pool = nil
        return member
    }

    /// A pool's endpoints are checked as the exporter's endpoint would be, under their own keys.
    func validatePool(_ pool: CollectorPoolConfiguration) throws(ConfigurationError) {
        let allowed = "1 to \(CollectorPoolConfiguration.maximumEndpoints) distinct collector URLs"
        if pool.endpoints.isEmpty || pool.endpoints.count > CollectorPoolConfiguration.maximumEndpoints {
            throw ConfigurationError(key: "exporter.pool.endpoints", value: "\(pool.endpoints.count) endpoints", allowed: allowed)
        }
        if Set(pool.endpoints).count != pool.endpoints.count {
            throw ConfigurationError(key: "exporter.pool.endpoints", value: pool.endpoints.joined(separator: ","), allowed: allowed)
        }
        for (key, value) in [("exporter.tracesEndpoint", tracesEndpoint), ("exporter.logsEndpoint", logsEndpoint)] {
            if let value {
                throw ConfigurationError(
                    key: key, value: value,
                    allowed: "no per-signal endpoint with a collector pool (exporter.pool): its endpoints serve both signals")
            }
        }
        for (index, endpoint) in pool.endpoints.enumerated() {
            do {
                try member(endpoint).validate()
            } catch {
                throw ConfigurationError(key: "exporter.pool.endpoints[\(index)]", value: endpoint, allowed: error.allowed)
            }
        }
    }
}
