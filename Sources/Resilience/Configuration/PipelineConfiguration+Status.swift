extension PipelineConfiguration {
    /// The status endpoint: a small HTTP/1.1 server of the pipeline's own, for operators and
    /// scrapers. Off by default; on loopback unless told otherwise.
    ///
    /// | route | answer |
    /// |---|---|
    /// | `GET /health` | ``TelemetryPipeline/health(window:)`` as JSON: 200 when healthy or degraded, 503 when unhealthy |
    /// | `GET /stats` | ``TelemetryPipeline/stats()`` as JSON: every figure, per signal and per destination |
    /// | `GET /metrics` | Prometheus text: the books (`spillway_*`) and, with ``servesApplicationMetrics``, the application's series |
    /// | `GET /config` | the running configuration by environment variable, header values and URL passwords left out |
    /// | `PUT /config` | with ``configurationToken`` (`Authorization: Bearer …`): live keys as JSON, applied by `reconfigure` |
    ///
    /// Bad requests get 400 (bad JSON, a refused configuration: the error names the key), 401 (no
    /// or a wrong token), 403 (`PUT /config` when no token is configured), 404, 405 or 413 (a body
    /// over 64 KiB), each with a message. The server runs on its own event loop; nothing it does
    /// waits on the pipeline's threads.
    public struct StatusEndpoint: Sendable, Hashable, CustomStringConvertible {
        /// The address to listen on. - Default value: `127.0.0.1`.
        public var host: String
        /// The port; 0 takes a free one (``TelemetryPipeline/statusEndpointPort`` says which).
        public var port: Int
        /// The bearer token that `PUT /config` requires; `nil` refuses every `PUT` (403).
        /// Never shown (descriptions, `GET /config`). - Environment variable: `SPILLWAY_STATUS_CONFIG_TOKEN`.
        public var configurationToken: String?
        /// Whether `GET /metrics` also serves the application's swift-metrics series
        /// (`SpillwayMetricsFactory`), so that a service can be scraped and export OTLP at once.
        /// - Default value: `true`.
        public var servesApplicationMetrics: Bool

        /// An endpoint on `host:port`; without `configurationToken`, `PUT /config` is refused.
        public init(host: String = "127.0.0.1", port: Int, configurationToken: String? = nil, servesApplicationMetrics: Bool = true) {
            self.host = host
            self.port = port
            self.configurationToken = configurationToken
            self.servesApplicationMetrics = servesApplicationMetrics
        }

        /// `host:port`, `:port` or `port` (host `127.0.0.1`); `[::1]:port` for IPv6.
        /// - Throws: ``ConfigurationError`` for `SPILLWAY_STATUS_ADDRESS`.
        public init(parsing address: String) throws(ConfigurationError) {
            let error = ConfigurationError(
                key: "SPILLWAY_STATUS_ADDRESS", value: address, allowed: "host:port, :port or port, the port 0 to 65535")
            var host = "127.0.0.1"
            var portText = Substring(address)
            if let colon = address.lastIndex(of: ":") {
                let hostPart = address[..<colon]
                if !hostPart.isEmpty {
                    host = hostPart.hasPrefix("[") && hostPart.hasSuffix("]") ? String(hostPart.dropFirst().dropLast()) : String(hostPart)
                }
                portText = address[address.index(after: colon)...]
            }
            guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty, !host.contains(" ") else { throw error }
            self.init(host: host, port: port)
        }

        public var description: String {
            "StatusEndpoint(\(host):\(port), PUT /config \(configurationToken == nil ? "off" : "on, token <redacted>"), "
                + "application metrics \(servesApplicationMetrics ? "on" : "off"))"
        }
    }
}
