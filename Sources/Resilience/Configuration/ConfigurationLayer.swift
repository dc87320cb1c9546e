/// One source of configuration values: the environment, a file, or a map given in code.
///
/// ``PipelineConfiguration/resolve(layers:)`` applies layers in order, the later winning per key:
/// defaults < environment < file < code is
/// `resolve(layers: [.init(environment: …), fileLayer])` followed by assignments in code.
/// Values are strings in the syntax of the environment variables (``ConfigurationKey``).
///
/// Thread-safety: a value type.
public struct ConfigurationLayer: Sendable, Hashable {
    /// The values, keyed by environment variable name (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    public var values: [String: String]
    /// Where the values come from, as errors print it: `environment`, `file /etc/app/telemetry.yaml`.
    public var name: String
    /// Whether errors name a key by its dotted file spelling (`otel.exporter.otlp.endpoint`).
    public var usesFileKeys: Bool

    /// A layer of `values` keyed by environment variable name, called `name` in errors.
    public init(name: String, values: [String: String], usesFileKeys: Bool = false) {
        self.name = name
        self.values = values
        self.usesFileKeys = usesFileKeys
    }

    /// The environment variables among `environment` that are configuration keys (`OTEL_*`, `SPILLWAY_*`).
    public init(environment: [String: String]) {
        self.init(name: "environment", values: environment.filter { $0.key.hasPrefix("OTEL_") || $0.key.hasPrefix("SPILLWAY_") })
    }

    /// How an error names the source of `key`.
    func source(of key: String) -> String {
        usesFileKeys ? "\(name), key \(ConfigurationKey.fileKey(for: key))" : name
    }
}

/// A configuration key: its environment variable, its spelling in a configuration file, its
/// default, and whether a running pipeline can take a new value (``TelemetryPipeline/reconfigure(_:)``).
public struct ConfigurationKey: Sendable, Hashable {
    /// The environment variable: `OTEL_BSP_SCHEDULE_DELAY`.
    public let environmentVariable: String
    /// The default, as the variable would spell it.
    public let defaultValue: String
    /// `true`: changes apply while running; `false`: a change needs a restart.
    public let isLive: Bool
    /// What it sets.
    public let summary: String

    /// The dotted, lower-case key that configuration files use: `otel.bsp.schedule.delay`
    /// (swift-configuration's mapping between environment variables and keys).
    public var fileKey: String { Self.fileKey(for: environmentVariable) }

    static func fileKey(for variable: String) -> String { variable.lowercased().replacingUnderscores() }

    /// The ``PipelineConfiguration`` property it sets in code (`—`: none).
    public let property: String

    init(_ variable: String, _ property: String, _ defaultValue: String, live: Bool, _ summary: String) {
        self.environmentVariable = variable
        self.property = property
        self.defaultValue = defaultValue
        self.isLive = live
        self.summary = summary
    }

    /// Every key Spillway reads, in the order of the README's table.
    public static let all: [ConfigurationKey] = [
        .init("OTEL_SDK_DISABLED", "isEnabled (inverted)", "false", live: true, "`true`: every API call does nothing"),
        .init("OTEL_SERVICE_NAME", "serviceName", "unknown_service:<process>", live: false, "`service.name`"),
        .init("OTEL_RESOURCE_ATTRIBUTES", "resourceAttributes", "", live: false, "more resource attributes, `k=v,k2=v2` (percent-encoded)"),
        .init(
            "OTEL_EXPORTER_OTLP_ENDPOINT", "exporter.endpoint", "http://localhost:4318", live: true,
            "collector base URL (`/v1/traces`, `/v1/logs` appended)"),
        .init("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "exporter.tracesEndpoint", "", live: true, "full URL for spans"),
        .init("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "exporter.logsEndpoint", "", live: true, "full URL for log records"),
        .init("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "exporter.metricsEndpoint", "", live: true, "full URL for metrics"),
        .init("OTEL_EXPORTER_OTLP_HEADERS", "exporter.headers", "", live: true, "request headers, `k=v,k2=v2`"),
        .init("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "exporter.traces.headers", "", live: true, "spans' headers, added to the common ones"),
        .init("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "exporter.logs.headers", "", live: true, "log records' headers, added to the common ones"),
        .init(
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS", "exporter.metrics.headers", "", live: true, "metrics' headers, added to the common ones"),
        .init("OTEL_EXPORTER_OTLP_COMPRESSION", "exporter.compression", "none", live: true, "`gzip` or `none`"),
        .init("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "exporter.traces.compression", "", live: true, "spans only: `gzip` or `none`"),
        .init("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "exporter.logs.compression", "", live: true, "log records only: `gzip` or `none`"),
        .init("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "exporter.metrics.compression", "", live: true, "metrics only: `gzip` or `none`"),
        .init("OTEL_EXPORTER_OTLP_TIMEOUT", "exporter.timeout", "10000", live: true, "per request, milliseconds"),
        .init("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "exporter.traces.timeout", "", live: true, "spans only: per request, milliseconds"),
        .init("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "exporter.logs.timeout", "", live: true, "log records only: per request, milliseconds"),
        .init("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "exporter.metrics.timeout", "", live: true, "metrics only: per request, milliseconds"),
        .init(
            "OTEL_EXPORTER_OTLP_CERTIFICATE", "exporter.tls.certificateFile", "system trust store", live: true,
            "CA bundle (PEM) trusted for `https://`; files are re-read at every reconfigure"),
        .init(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "exporter.tls.clientCertificateFile", "", live: true,
            "client certificate (PEM), mutual TLS"),
        .init("OTEL_EXPORTER_OTLP_CLIENT_KEY", "exporter.tls.clientKeyFile", "", live: true, "the client certificate's key (PEM)"),
        .init(
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "exporter.traces.tls.certificateFile", "", live: true,
            "spans only: CA bundle (PEM) trusted for `https://`; files are re-read at every reconfigure"),
        .init(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "exporter.traces.tls.clientCertificateFile", "", live: true,
            "spans only: client certificate (PEM), mutual TLS"),
        .init(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "exporter.traces.tls.clientKeyFile", "", live: true,
            "spans only: the client certificate's key (PEM)"),
        .init(
            "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "exporter.logs.tls.certificateFile", "", live: true,
            "log records only: CA bundle (PEM) trusted for `https://`; files are re-read at every reconfigure"),
        .init(
            "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", "exporter.logs.tls.clientCertificateFile", "", live: true,
            "log records only: client certificate (PEM), mutual TLS"),
        .init(
            "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "exporter.logs.tls.clientKeyFile", "", live: true,
            "log records only: the client certificate's key (PEM)"),
        .init(
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "exporter.metrics.tls.certificateFile", "", live: true,
            "metrics only: CA bundle (PEM) trusted for `https://`; files are re-read at every reconfigure"),
        .init(
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", "exporter.metrics.tls.clientCertificateFile", "", live: true,
            "metrics only: client certificate (PEM), mutual TLS"),
        .init(
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "exporter.metrics.tls.clientKeyFile", "", live: true,
            "metrics only: the client certificate's key (PEM)"),
        .init(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "exporter.protocol", "http/protobuf", live: true,
            "`http/protobuf` or `grpc` (the trait `GRPC`); gRPC's default endpoint is `http://localhost:4317`"),
        .init("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "exporter.traces.protocol", "", live: true, "spans only: `http/protobuf` or `grpc`"),
        .init("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "exporter.logs.protocol", "", live: true, "log records only: `http/protobuf` or `grpc`"),
        .init(
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "exporter.metrics.protocol", "", live: true, "metrics only: `http/protobuf` or `grpc`"),
        .init(
            "OTEL_EXPORTER_OTLP_INSECURE", "exporter.insecure", "false", live: true,
            "`true`: a gRPC endpoint without a scheme (`host:port`) is plaintext, else TLS"),
        .init("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "exporter.traces.insecure", "", live: true, "spans only: as `…_INSECURE`"),
        .init("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "exporter.logs.insecure", "", live: true, "log records only: as `…_INSECURE`"),
        .init("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "exporter.metrics.insecure", "", live: true, "metrics only: as `…_INSECURE`"),
        .init("OTEL_METRIC_EXPORT_INTERVAL", "metrics.exportInterval", "60000", live: false, "metrics collection interval, milliseconds"),
        .init("OTEL_METRIC_EXPORT_TIMEOUT", "metrics.exportTimeout", "30000", live: false, "one metrics export, milliseconds"),
        .init(
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "metrics.temporality", "cumulative", live: false,
            "`cumulative`, `delta` or `lowmemory`"),
        .init(
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "metrics.histogramAggregation", "explicit_bucket_histogram",
            live: false, "`explicit_bucket_histogram` or `base2_exponential_bucket_histogram`"),
        .init("SPILLWAY_METRICS_CARDINALITY_LIMIT", "metrics.cardinalityLimit", "2000", live: false, "series per metric"),
        .init(
            "SPILLWAY_EXPORTER_OTLP_POOL_ENDPOINTS", "exporter.pool.endpoints", "", live: false,
            "a collector pool instead of the endpoint: base URLs, comma-separated"),
        .init(
            "SPILLWAY_EXPORTER_OTLP_POOL_MODE", "exporter.pool.mode", "failover", live: false,
            "`failover` (in order) or `balance-by-trace` (each trace to one collector)"),
        .init("OTEL_BSP_SCHEDULE_DELAY", "traces.scheduleDelay", "5000", live: true, "span batch delay, milliseconds"),
        .init("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "traces.maxExportBatchSize", "512", live: true, "spans per request"),
        .init(
            "OTEL_BSP_EXPORT_TIMEOUT", "traces.exportTimeout", "30000", live: true,
            "milliseconds (validated; each request is bounded by the exporter timeout)"),
        .init("OTEL_BSP_MAX_QUEUE_SIZE", "—", "2048", live: false, "validated; the ring is sized in bytes (`SPILLWAY_RING_CAPACITY`)"),
        .init("OTEL_BLRP_SCHEDULE_DELAY", "logs.scheduleDelay", "1000", live: true, "log batch delay, milliseconds"),
        .init("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "logs.maxExportBatchSize", "512", live: true, "log records per request"),
        .init("OTEL_BLRP_EXPORT_TIMEOUT", "logs.exportTimeout", "30000", live: true, "milliseconds (validated)"),
        .init("OTEL_BLRP_MAX_QUEUE_SIZE", "—", "2048", live: false, "validated"),
        .init(
            "SPILLWAY_BSP_MAX_CONCURRENT_EXPORTS", "traces.maxConcurrentExports", "128", live: true,
            "span requests under way at most (the adaptive window's ceiling)"),
        .init("SPILLWAY_BSP_ADAPTIVE_CONCURRENCY", "traces.adaptiveConcurrency", "true", live: true, "`false`: always the maximum"),
        .init(
            "SPILLWAY_BSP_MAX_BYTES_IN_FLIGHT", "traces.maxBytesInFlight", "8388608", live: true,
            "span request bodies under way at most, bytes (one request may always go)"),
        .init(
            "SPILLWAY_BLRP_MAX_CONCURRENT_EXPORTS", "logs.maxConcurrentExports", "128", live: true,
            "log requests under way at most (the adaptive window's ceiling)"),
        .init("SPILLWAY_BLRP_ADAPTIVE_CONCURRENCY", "logs.adaptiveConcurrency", "true", live: true, "`false`: always the maximum"),
        .init(
            "SPILLWAY_BLRP_MAX_BYTES_IN_FLIGHT", "logs.maxBytesInFlight", "8388608", live: true,
            "log request bodies under way at most, bytes (one request may always go)"),
        .init("OTEL_TRACES_SAMPLER", "sampler", "parentbased_always_on", live: true, "the sampler (``TraceSampler``)"),
        .init("OTEL_TRACES_SAMPLER_ARG", "sampler", "1.0", live: true, "the ratio of `*traceidratio`, 0 … 1"),
        .init("OTEL_ATTRIBUTE_COUNT_LIMIT", "limits.countLimit", "128", live: false, "attributes per record"),
        .init("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "limits.valueLengthLimit", "unlimited", live: false, "bytes per string value"),
        .init("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "limits.countLimit", "128", live: false, "attributes per span"),
        .init("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "limits.valueLengthLimit", "unlimited", live: false, "bytes per span string value"),
        .init("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "limits.countLimit", "128", live: false, "attributes per log record"),
        .init(
            "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "limits.valueLengthLimit", "unlimited", live: false, "bytes per log string value"
        ),
        .init("OTEL_SPAN_EVENT_COUNT_LIMIT", "limits.eventCountLimit", "128", live: false, "events per span"),
        .init("OTEL_SPAN_LINK_COUNT_LIMIT", "limits.linkCountLimit", "128", live: false, "links per span"),
        .init("SPILLWAY_RING_CAPACITY", "ringCapacity", "16777216", live: false, "ring bytes, a power of two"),
        .init("SPILLWAY_OVERFLOW", "overflowPolicy", "drop_newest", live: false, "`drop_newest` or `block:<ms>`"),
        .init("SPILLWAY_SPILL_DIR", "spill", "", live: false, "spill store directory (empty: batches wait in memory)"),
        .init(
            "SPILLWAY_SPILL_DURABILITY", "spill.durability", "interval:1000", live: false,
            "`none`, `always` or `interval:<ms>`: when spilled frames are fsynced"),
        .init(
            "SPILLWAY_SPILL_MAX_BYTES", "spill.maxBytes", "1073741824", live: false,
            "per signal: past this, the oldest segments are deleted (`retention`)"),
        .init(
            "SPILLWAY_SPILL_MAX_AGE", "spill.maxAge", "86400000", live: false,
            "per signal: older segments are deleted (`retention`), milliseconds"),
        .init("SPILLWAY_SPILL_MAX_SEGMENT_BYTES", "spill.maxSegmentBytes", "67108864", live: false, "a segment is sealed at this size"),
        .init(
            "SPILLWAY_SPILL_IO", "spill.io", "auto", live: false,
            "`auto` (io_uring where the kernel allows it, else pwrite) or `pwrite`; used when a spill store exists"),
        .init("SPILLWAY_SPILL_REPLAY_CONCURRENCY", "spill.replayConcurrency", "2", live: false, "replay requests at once"),
        .init(
            "SPILLWAY_STATUS_ADDRESS", "statusEndpoint", "(off)", live: false,
            "the status endpoint (`/health`, `/stats`, `/metrics`, `/config`): `host:port`, `:port` (loopback)"),
        .init(
            "SPILLWAY_STATUS_CONFIG_TOKEN", "statusEndpoint.configurationToken", "(off)", live: false,
            "bearer token that enables `PUT /config` on the status endpoint"),
        .init(
            "SPILLWAY_SHUTDOWN_TIMEOUT", "shutdownTimeout", "10000", live: true, "graceful-shutdown deadline of the `Service`, milliseconds"
        ),
        .init(
            "SPILLWAY_EXCEPTION_STACKTRACE_SEVERITY", "exceptionStackTraces", "(not set: `error`; swift-log bridge: none)", live: true,
            "from which severity errors on log records get `exception.stacktrace`; `never`")
    ]
}

extension String {
    func replacingUnderscores() -> String { String(map { $0 == "_" ? "." : $0 }) }
}

extension ConfigurationLayer {
    /// What an environment layer holds that Spillway does not use, in words: an unknown
    /// `SPILLWAY_*` variable (with the nearest known one: a typo would otherwise be silently
    /// ignored), and `OTEL_*` variables of the specification that Spillway does not support.
    /// A ``TelemetryPipeline`` logs these at start.
    public var warnings: [String] {
        var warnings: [String] = []
        let known = Set(ConfigurationKey.all.map(\.environmentVariable))
        for (name, value) in values.sorted(by: { $0.key < $1.key }) where !known.contains(name) {
            let lower = value.lowercased().trimmingSpaces
            switch name {
            case "OTEL_TRACES_EXPORTER", "OTEL_LOGS_EXPORTER":
                if lower != "otlp" {
                    warnings.append("\(name)=\(value) is not supported: Spillway exports OTLP only; the variable is ignored")
                }
            case "OTEL_METRICS_EXPORTER":
                if lower != "otlp" && lower != "none" {
                    warnings.append("\(name)=\(value) is not supported: Spillway exports OTLP only; the variable is ignored")
                }
            case "OTEL_PROPAGATORS":
                let propagators = Set(lower.split(separator: ",").map { String($0).trimmingSpaces })
                if !propagators.isSubset(of: ["tracecontext", "baggage", "none"]) {
                    warnings.append(
                        "\(name)=\(value) is not supported: Spillway propagates W3C tracecontext (and baggage) only; the variable "
                            + "is ignored"
                    )
                }
            case _ where name.hasPrefix("SPILLWAY_"):
                let nearest = known.filter { $0.hasPrefix("SPILLWAY_") }.min { editDistance($0, name) < editDistance($1, name) } ?? ""
                warnings.append("\(name) is not a Spillway variable and is ignored (did you mean \(nearest)?)")
            default:
                warnings.append("\(name) is not supported by Spillway and is ignored (the supported variables are in ConfigurationKey.all)")
            }
        }
        return warnings
    }
}

/// The Levenshtein distance of two strings' UTF-8 bytes (for "did you mean …").
package func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + [Int](repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
