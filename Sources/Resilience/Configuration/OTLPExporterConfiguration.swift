/// The OTLP exporter's settings: where to, over which protocol, which headers, compression,
/// timeout and TLS — in common and per signal.
///
/// Header values are credentials: the description, `dump` and the debugger show their names only.
/// An `https://` endpoint uses TLS (the package trait `TLS`, on by default) with ``tls``. With
/// ``OTLPProtocol/grpc`` (the package trait `GRPC`), the endpoint is used as is — no path is
/// appended — and its default is `http://localhost:4317`.
public struct OTLPExporterConfiguration: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The base URL; over HTTP `/v1/traces`, `/v1/logs` and `/v1/metrics` are appended, over gRPC it is used as is.
    /// - Default value: `http://localhost:4318` (`http://localhost:4317` when the protocol is gRPC
    ///   and this is left at its default). - Environment variable: `OTEL_EXPORTER_OTLP_ENDPOINT`.
    public var endpoint: String
    /// The transport. - Default value: ``OTLPProtocol/httpProtobuf``.
    /// - Environment variable: `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` | `grpc`).
    public var `protocol`: OTLPProtocol
    /// For a gRPC endpoint written without a scheme (`collector:4317`): `true` speaks plaintext,
    /// `false` TLS. An `http://` or `https://` endpoint says it itself. - Default value: `false`.
    /// - Environment variable: `OTEL_EXPORTER_OTLP_INSECURE`.
    public var insecure: Bool
    /// The full URL for spans, used as is. - Environment variable: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    public var tracesEndpoint: String?
    /// The full URL for logs, used as is. - Environment variable: `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`.
    public var logsEndpoint: String?
    /// The full URL for metrics, used as is. - Environment variable: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`.
    public var metricsEndpoint: String?
    /// Extra request headers. - Environment variable: `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, percent-encoded).
    public var headers: [String: String]
    /// Request body compression. - Default value: none. - Environment variable: `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip` | `none`).
    public var compression: Compression
    /// Per-request timeout. - Default value: 10 s. - Environment variable: `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds).
    public var timeout: Duration
    /// What spans' requests set apart from the common settings. - Environment variables:
    /// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, `…_TRACES_COMPRESSION`, `…_TRACES_TIMEOUT`.
    public var traces: SignalSettings
    /// What log records' requests set apart from the common settings. - Environment variables:
    /// `OTEL_EXPORTER_OTLP_LOGS_HEADERS`, `…_LOGS_COMPRESSION`, `…_LOGS_TIMEOUT`.
    public var logs: SignalSettings
    /// What metrics' requests set apart from the common settings. - Environment variables:
    /// `OTEL_EXPORTER_OTLP_METRICS_HEADERS`, `…_METRICS_COMPRESSION`, `…_METRICS_TIMEOUT`.
    public var metrics: SignalSettings
    /// The CA bundle and the client certificate for `https://` endpoints.
    /// - Default value: the system trust store, no client certificate.
    /// - Environment variables: `OTEL_EXPORTER_OTLP_CERTIFICATE`, `…_CLIENT_CERTIFICATE`, `…_CLIENT_KEY`.
    public var tls: ExporterTLSConfiguration
    /// Several collectors instead of ``endpoint``: failover, or balanced by trace id. Its
    /// endpoints take every other setting here. - Default value: `nil`, the one ``endpoint``.
    /// - Environment variables: `SPILLWAY_EXPORTER_OTLP_POOL_ENDPOINTS`, `SPILLWAY_EXPORTER_OTLP_POOL_MODE`.
    public var pool: CollectorPoolConfiguration?

    public enum Compression: String, Sendable, Hashable {
        case none
        case gzip
    }

    /// The settings one signal's requests take instead of the common ones, as the specification's
    /// signal-specific variables give them: they win over the common value for that signal only.
    /// Headers add to the common headers (a name in both takes the signal's value); a `nil`
    /// compression or timeout takes the common one, and so does each `nil` TLS value.
    public struct SignalSettings: Sendable, Hashable {
        /// Headers for this signal's requests, on top of ``OTLPExporterConfiguration/headers``.
        public var headers: [String: String]
        /// This signal's compression; `nil`: ``OTLPExporterConfiguration/compression``.
        public var compression: Compression?
        /// This signal's per-request timeout; `nil`: ``OTLPExporterConfiguration/timeout``.
        public var timeout: Duration?
        /// This signal's TLS files; each `nil` value: ``OTLPExporterConfiguration/tls``'s.
        public var tls: ExporterTLSConfiguration
        /// This signal's transport; `nil`: ``OTLPExporterConfiguration/protocol``.
        public var `protocol`: OTLPProtocol?
        /// This signal's ``OTLPExporterConfiguration/insecure``; `nil`: the common one.
        public var insecure: Bool?

        /// A signal's own settings; every value left out takes the common one.
        public init(
            headers: [String: String] = [:], compression: Compression? = nil, timeout: Duration? = nil,
            tls: ExporterTLSConfiguration = ExporterTLSConfiguration(), protocol: OTLPProtocol? = nil, insecure: Bool? = nil
        ) {
            self.headers = headers
            self.compression = compression
            self.timeout = timeout
            self.tls = tls
            self.protocol = `protocol`
            self.insecure = insecure
        }
    }

    /// The exporter's settings, each with the default of the OpenTelemetry specification.
    public init(
        endpoint: String = OTLPExporterConfiguration.defaultEndpoint, tracesEndpoint: String? = nil, logsEndpoint: String? = nil,
        headers: [String: String] = [:], compression: Compression = .none, timeout: Duration = .seconds(10),
        traces: SignalSettings = SignalSettings(), logs: SignalSettings = SignalSettings(),
        tls: ExporterTLSConfiguration = ExporterTLSConfiguration(), protocol: OTLPProtocol = .httpProtobuf, insecure: Bool = false,
        pool: CollectorPoolConfiguration? = nil, metricsEndpoint: String? = nil, metrics: SignalSettings = SignalSettings()
    ) {
        self.metricsEndpoint = metricsEndpoint
        self.metrics = metrics
        self.endpoint = endpoint
        self.pool = pool
        self.protocol = `protocol`
        self.insecure = insecure
        self.tracesEndpoint = tracesEndpoint
        self.logsEndpoint = logsEndpoint
        self.headers = headers
        self.compression = compression
        self.timeout = timeout
        self.traces = traces
        self.logs = logs
        self.tls = tls
    }

    /// ``compression`` and ``timeout`` as optionals, so that the environment's common and
    /// per-signal variables are read by one loop.
    var commonCompression: Compression? {
        get { compression }
        set { if let newValue { compression = newValue } }
    }
    var commonTimeout: Duration? {
        get { timeout }
        set { if let newValue { timeout = newValue } }
    }
    var commonProtocol: OTLPProtocol? {
        get { `protocol` }
        set { if let newValue { `protocol` = newValue } }
    }
    var commonInsecure: Bool? {
        get { insecure }
        set { if let newValue { insecure = newValue } }
    }

    /// The default ``endpoint`` (OTLP/HTTP's port; gRPC's default is port 4317).
    public static let defaultEndpoint = "http://localhost:4318"

    /// The settings of `signal`'s requests, the signal's own winning over the common ones.
    func resolved(_ signal: TelemetrySignal) -> OTLPSignalSettings {
        let own = settings(signal)
        return OTLPSignalSettings(
            headers: headers.merging(own.headers) { _, signal in signal }, compression: own.compression ?? compression,
            timeout: own.timeout ?? timeout, tls: tls.overridden(by: own.tls), protocol: own.protocol ?? `protocol`,
            insecure: own.insecure ?? insecure)
    }

    /// `signal`'s own settings (``traces``, ``logs`` or ``metrics``).
    func settings(_ signal: TelemetrySignal) -> SignalSettings {
        switch signal {
        case .traces: traces
        case .logs: logs
        case .metrics: metrics
        }
    }

    /// `signal`'s own full URL (``tracesEndpoint``, ``logsEndpoint`` or ``metricsEndpoint``).
    func ownEndpoint(_ signal: TelemetrySignal) -> String? {
        switch signal {
        case .traces: tracesEndpoint
        case .logs: logsEndpoint
        case .metrics: metricsEndpoint
        }
    }

    /// Whether a TLS file is named anywhere: a reconfigure then builds a new exporter even when
    /// nothing changed, to read the files again (certificate rotation).
    var namesTLSFiles: Bool { tls.namesFiles || TelemetrySignal.allCases.contains { settings($0).tls.namesFiles } }

    public var description: String {
        func names(_ headers: [String: String]) -> String { headers.keys.sorted().map { "\($0)=<redacted>" }.joined(separator: ",") }
        func signal(_ name: String, _ settings: SignalSettings) -> String {
            guard settings != SignalSettings() else { return "" }
            return
                ", \(name): (protocol: \(settings.protocol.map { "\($0)" } ?? "-"), headers: [\(names(settings.headers))], "
                + "compression: \(settings.compression.map { "\($0)" } ?? "-"), "
                + "timeout: \(settings.timeout.map { "\($0)" } ?? "-")\(settings.tls.namesFiles ? ", tls: \(settings.tls)" : ""))"
        }
        return
            "OTLPExporterConfiguration(protocol: \(`protocol`), endpoint: \(endpoint), "
            + "tracesEndpoint: \(tracesEndpoint ?? "-"), logsEndpoint: "
            + "\(logsEndpoint ?? "-"), \(metricsEndpoint.map { "metricsEndpoint: \($0), " } ?? "")"
            + "headers: [\(names(headers))], compression: \(compression), timeout: \(timeout), tls: \(tls)"
            + "\(signal("traces", traces))\(signal("logs", logs))\(signal("metrics", metrics))\(pool.map { ", pool: \($0)" } ?? ""))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        func redacted(_ settings: SignalSettings) -> String {
            "headers: \(settings.headers.keys.sorted().map { "\($0)=<redacted>" }), compression: "
                + "\(settings.compression.map { "\($0)" } ?? "-"), timeout: \(settings.timeout.map { "\($0)" } ?? "-")"
        }
        return Mirror(
            self,
            children: [
                "protocol": `protocol`, "endpoint": endpoint, "tracesEndpoint": tracesEndpoint as Any, "logsEndpoint": logsEndpoint as Any,
                "metricsEndpoint": metricsEndpoint as Any, "metrics": redacted(metrics),
                "headers": headers.keys.sorted().map { "\($0)=<redacted>" }, "compression": compression, "timeout": timeout,
                "traces": redacted(traces), "logs": redacted(logs), "tls": tls, "pool": pool as Any
            ], displayStyle: .struct)
    }

    /// The URL spans go to, by the specification's rules (over gRPC: the collector's address).
    public var resolvedTracesEndpoint: String { resolvedEndpoint(.traces) }
    /// The URL logs go to, by the specification's rules (over gRPC: the collector's address).
    public var resolvedLogsEndpoint: String { resolvedEndpoint(.logs) }
    /// The URL metrics go to, by the specification's rules (over gRPC: the collector's address).
    public var resolvedMetricsEndpoint: String { resolvedEndpoint(.metrics) }

    func resolvedEndpoint(_ signal: TelemetrySignal) -> String {
        if let own = ownEndpoint(signal) { return own }
        if settings(signal).protocol ?? `protocol` == .grpc {
            return endpoint == Self.defaultEndpoint ? "http://localhost:4317" : endpoint
        }
        return Self.append("v1/\(signal)", to: endpoint)
    }

    static func append(_ path: String, to base: String) -> String {
        base.hasSuffix("/") ? base + path : base + "/" + path
    }

    /// `text` with every header value of this configuration (4 characters or longer) replaced by
    /// `<redacted>`: for what the collector says back, which may echo a credential.
    func redactingHeaderValues(_ text: String) -> String {
        var result = text
        for value in headers.values where value.count >= 4 && result.contains(value) {
            result = result.replacing(value, with: "<redacted>")
        }
        return result
    }

    func validate() throws(ConfigurationError) {
        if let pool { try validatePool(pool) }
        for signal in TelemetrySignal.allCases where pool == nil {
            let settings = resolved(signal)
            let own = ownEndpoint(signal)
            let key = own == nil ? "exporter.endpoint" : "exporter.\(signal)Endpoint"
            do {
                _ = try HTTPEndpoint(parsing: resolvedEndpoint(signal), settings: settings)
            } catch {
                throw ConfigurationError(key: key, value: own ?? endpoint, allowed: error.allowed)
            }
            #if !GRPC
                if settings.protocol == .grpc {
                    let key = self.settings(signal).protocol == nil ? "exporter.protocol" : "exporter.\(signal).protocol"
                    throw ConfigurationError(
                        key: key, value: "grpc", allowed: "http/protobuf (grpc needs the package trait GRPC, which this build leaves out)")
                }
            #endif
        }
        for (prefix, timeout, headers) in [
            ("exporter", timeout, headers), ("exporter.traces", traces.timeout, traces.headers),
            ("exporter.logs", logs.timeout, logs.headers), ("exporter.metrics", metrics.timeout, metrics.headers)
        ] {
            if let timeout, timeout <= .zero {
                throw ConfigurationError(key: "\(prefix).timeout", value: "\(timeout)", allowed: "a duration > 0")
            }
            for name in headers.keys where name.isEmpty || name.utf8.contains(where: { $0 <= 32 || $0 == UInt8(ascii: ":") || $0 >= 127 }) {
                throw ConfigurationError(key: "\(prefix).headers", value: name, allowed: "header names of visible ASCII without ':'")
            }
            // HTTP/1.1 and HTTP/2 both refuse these in a value (RFC 9110 §5.5, RFC 9113 §8.2.1).
            for (name, value) in headers where value.utf8.contains(where: { $0 == 0 || $0 == 10 || $0 == 13 }) {
                throw ConfigurationError(
                    key: "\(prefix).headers.\(name)", value: "(not shown)", allowed: "a value without NUL, CR or LF")
            }
        }
        try tls.validate(prefix: "exporter.tls")
        try tls.overridden(by: traces.tls).validate(prefix: "exporter.traces.tls")
        try tls.overridden(by: logs.tls).validate(prefix: "exporter.logs.tls")
        try tls.overridden(by: metrics.tls).validate(prefix: "exporter.metrics.tls")
    }
}

/// One signal's request settings, the signal's own winning over the common ones
/// (``OTLPExporterConfiguration/resolved(_:)``).
struct OTLPSignalSettings: Sendable, Hashable {
    var headers: [String: String]
    var compression: OTLPExporterConfiguration.Compression
    var timeout: Duration
    var tls: ExporterTLSConfiguration
    var `protocol`: OTLPProtocol
    var insecure: Bool
}

/// How the OTLP exporter talks to the collector.
public enum OTLPProtocol: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Protobuf over HTTP/1.1 (`POST /v1/traces`), plaintext or TLS. Always built in.
    case httpProtobuf = "http/protobuf"
    /// Unary `Export` calls over HTTP/2 (gRPC), plaintext (prior knowledge) or TLS (ALPN `h2`).
    /// Needs the package trait `GRPC`.
    case grpc

    public var description: String { rawValue }
}
