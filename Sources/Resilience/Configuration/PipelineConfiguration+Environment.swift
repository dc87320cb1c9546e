#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension PipelineConfiguration {
    /// The defaults with the `OTEL_*` environment variables of the specification and the
    /// `SPILLWAY_*` variables applied. Values set in code afterwards win.
    ///
    /// Read: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_[TRACES_|LOGS_]ENDPOINT`,
    /// `…_HEADERS`, `…_COMPRESSION`, `…_TIMEOUT`, `…_CERTIFICATE`, `…_CLIENT_CERTIFICATE`, `…_CLIENT_KEY`,
    /// `…_PROTOCOL` (`http/protobuf`, `grpc`), `…_INSECURE`,
    /// `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_EXPORT_TIMEOUT`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
    /// `OTEL_BSP_MAX_QUEUE_SIZE` (checked; the ring is sized in bytes by `SPILLWAY_RING_CAPACITY`),
    /// the same four `OTEL_BLRP_*`, `OTEL_ATTRIBUTE_COUNT_LIMIT`, `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`,
    /// `OTEL_SPAN_EVENT_COUNT_LIMIT`, `OTEL_SPAN_LINK_COUNT_LIMIT`, `SPILLWAY_RING_CAPACITY`, `SPILLWAY_OVERFLOW`, `SPILLWAY_SPILL_DIR`.
    ///
    /// - Throws: ``ConfigurationError`` naming the variable, its value and what is allowed.
    public static func fromEnvironment(_ environment: [String: String] = processEnvironment()) throws(ConfigurationError)
        -> PipelineConfiguration
    {
        try resolve(layers: [ConfigurationLayer(environment: environment)])
    }

    /// The defaults with `layers` applied in order: for each key, the last layer that sets it wins.
    ///
    /// Keys are the environment variable names of ``ConfigurationKey/all`` (a file layer maps
    /// its dotted keys to them: `otel.exporter.otlp.endpoint` is `OTEL_EXPORTER_OTLP_ENDPOINT`).
    /// Values set in code afterwards win over every layer.
    ///
    /// - Throws: ``ConfigurationError`` naming the key, the value, the layer it came from and
    ///   what is allowed; the first invalid value stops the resolution.
    public static func resolve(layers: [ConfigurationLayer]) throws(ConfigurationError) -> PipelineConfiguration {
        var merged: [String: (value: String, source: String)] = [:]
        for layer in layers {
            for (key, value) in layer.values { merged[key] = (value, layer.source(of: key)) }
        }
        var config = PipelineConfiguration()
        let env = EnvironmentReader(entries: merged)
        let environment = merged.mapValues(\.value)

        if let attributes = environment["OTEL_RESOURCE_ATTRIBUTES"], !attributes.isEmpty {
            for (key, value) in try env.pairs("OTEL_RESOURCE_ATTRIBUTES", attributes) {
                if key == "service.name" { config.serviceName = value } else { config.resourceAttributes[key] = .string(value) }
            }
        }
        if let name = env.string("OTEL_SERVICE_NAME") { config.serviceName = name }

        if let v = env.string("OTEL_EXPORTER_OTLP_ENDPOINT") { config.exporter.endpoint = v }
        if let v = env.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") { config.exporter.tracesEndpoint = v }
        if let v = env.string("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") { config.exporter.logsEndpoint = v }
        if let v = env.string("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") { config.exporter.metricsEndpoint = v }
        try applyPool(env, &config)
        // The common settings, then each signal's own (which win for that signal only).
        let settings:
            [(
                prefix: String, headers: WritableKeyPath<PipelineConfiguration, [String: String]>,
                compression: WritableKeyPath<PipelineConfiguration, OTLPExporterConfiguration.Compression?>,
                timeout: WritableKeyPath<PipelineConfiguration, Duration?>
            )] = [
                ("OTEL_EXPORTER_OTLP", \.exporter.headers, \.exporter.commonCompression, \.exporter.commonTimeout),
                ("OTEL_EXPORTER_OTLP_TRACES", \.exporter.traces.headers, \.exporter.traces.compression, \.exporter.traces.timeout),
                ("OTEL_EXPORTER_OTLP_LOGS", \.exporter.logs.headers, \.exporter.logs.compression, \.exporter.logs.timeout),
                ("OTEL_EXPORTER_OTLP_METRICS", \.exporter.metrics.headers, \.exporter.metrics.compression, \.exporter.metrics.timeout)
            ]
        for (prefix, headers, compression, timeout) in settings {
            let name = "\(prefix)_HEADERS"
            if let v = env.string(name) { for (k, value) in try env.pairs(name, v) { config[keyPath: headers][k] = value } }
            if let v = env.string("\(prefix)_COMPRESSION") {
                guard let c = OTLPExporterConfiguration.Compression(rawValue: v.lowercased()) else {
                    throw ConfigurationError(
                        key: "\(prefix)_COMPRESSION", value: v, allowed: "gzip, none", source: env.source("\(prefix)_COMPRESSION"))
                }
                config[keyPath: compression] = c
            }
            if let ms = try env.integer("\(prefix)_TIMEOUT", minimum: 1) { config[keyPath: timeout] = .milliseconds(ms) }
        }
        for (prefix, tls) in [
            ("OTEL_EXPORTER_OTLP", \PipelineConfiguration.exporter.tls), ("OTEL_EXPORTER_OTLP_TRACES", \.exporter.traces.tls),
            ("OTEL_EXPORTER_OTLP_LOGS", \.exporter.logs.tls), ("OTEL_EXPORTER_OTLP_METRICS", \.exporter.metrics.tls)
        ] {
            if let v = env.string("\(prefix)_CERTIFICATE") { config[keyPath: tls].certificateFile = v }
            if let v = env.string("\(prefix)_CLIENT_CERTIFICATE") { config[keyPath: tls].clientCertificateFile = v }
            if let v = env.string("\(prefix)_CLIENT_KEY") { config[keyPath: tls].clientKeyFile = v }
        }
        for (prefix, transport, insecure) in [
            ("OTEL_EXPORTER_OTLP", \PipelineConfiguration.exporter.commonProtocol, \PipelineConfiguration.exporter.commonInsecure),
            ("OTEL_EXPORTER_OTLP_TRACES", \.exporter.traces.protocol, \.exporter.traces.insecure),
            ("OTEL_EXPORTER_OTLP_LOGS", \.exporter.logs.protocol, \.exporter.logs.insecure),
            ("OTEL_EXPORTER_OTLP_METRICS", \.exporter.metrics.protocol, \.exporter.metrics.insecure)
        ] {
            let name = "\(prefix)_PROTOCOL"
            if let v = env.string(name) {
                guard let value = OTLPProtocol(rawValue: v.lowercased()) else {
                    throw ConfigurationError(
                        key: name, value: v, allowed: "http/protobuf, grpc (http/json is not supported)", source: env.source(name))
                }
                config[keyPath: transport] = value
            }
            if let v = try env.boolean("\(prefix)_INSECURE") { config[keyPath: insecure] = v }
        }

        for (prefix, keyPath) in [("OTEL_BSP", \PipelineConfiguration.traces), ("OTEL_BLRP", \PipelineConfiguration.logs)] {
            if let ms = try env.integer("\(prefix)_SCHEDULE_DELAY", minimum: 1) {
                config[keyPath: keyPath].scheduleDelay = .milliseconds(ms)
            }
            if let ms = try env.integer("\(prefix)_EXPORT_TIMEOUT", minimum: 1) {
                config[keyPath: keyPath].exportTimeout = .milliseconds(ms)
            }
            if let n = try env.integer("\(prefix)_MAX_EXPORT_BATCH_SIZE", minimum: 1) { config[keyPath: keyPath].maxExportBatchSize = n }
            _ = try env.integer("\(prefix)_MAX_QUEUE_SIZE", minimum: 1)
        }
        try applyMetrics(env, &config)
        for (prefix, keyPath) in [("SPILLWAY_BSP", \PipelineConfiguration.traces), ("SPILLWAY_BLRP", \PipelineConfiguration.logs)] {
            if let n = try env.integer("\(prefix)_MAX_CONCURRENT_EXPORTS", minimum: 1) { config[keyPath: keyPath].maxConcurrentExports = n }
            if let adaptive = try env.boolean("\(prefix)_ADAPTIVE_CONCURRENCY") { config[keyPath: keyPath].adaptiveConcurrency = adaptive }
            if let n = try env.integer("\(prefix)_MAX_BYTES_IN_FLIGHT", minimum: 1) { config[keyPath: keyPath].maxBytesInFlight = n }
        }

        for name in ["OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT"] {
            if let n = try env.integer(name, minimum: 0) { config.limits.countLimit = n }
        }
        for name in [
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT"
        ] {
            if let n = try env.integer(name, minimum: 0) { config.limits.valueLengthLimit = n }
        }
        if let n = try env.integer("OTEL_SPAN_EVENT_COUNT_LIMIT", minimum: 0) { config.limits.eventCountLimit = n }
        if let n = try env.integer("OTEL_SPAN_LINK_COUNT_LIMIT", minimum: 0) { config.limits.linkCountLimit = n }

        if let n = try env.integer("SPILLWAY_RING_CAPACITY", minimum: 1024) {
            guard n & (n - 1) == 0, n <= 1 << 30 else {
                throw ConfigurationError(
                    key: "SPILLWAY_RING_CAPACITY", value: "\(n)", allowed: "a power of two from 1024 to 1073741824 bytes",
                    source: env.source("SPILLWAY_RING_CAPACITY"))
            }
            config.ringCapacity = n
        }
        if let v = env.string("SPILLWAY_OVERFLOW") {
            guard let policy = OverflowPolicy(parsing: v) else {
                throw ConfigurationError(
                    key: "SPILLWAY_OVERFLOW", value: v, allowed: OverflowPolicy.allowedSpellings, source: env.source("SPILLWAY_OVERFLOW"))
            }
            config.overflowPolicy = policy
        }
        if let disabled = try env.boolean("OTEL_SDK_DISABLED") { config.isEnabled = !disabled }
        var ratio = 1.0
        if let v = env.string("OTEL_TRACES_SAMPLER_ARG") {
            guard let r = Double(v), r >= 0, r <= 1 else {
                throw ConfigurationError(
                    key: "OTEL_TRACES_SAMPLER_ARG", value: v, allowed: "a ratio from 0 to 1", source: env.source("OTEL_TRACES_SAMPLER_ARG"))
            }
            ratio = r
        }
        if let v = env.string("OTEL_TRACES_SAMPLER") {
            switch v.lowercased() {
            case "always_on": config.sampler = .alwaysOn
            case "always_off": config.sampler = .alwaysOff
            case "traceidratio": config.sampler = .traceIDRatio(ratio)
            case "parentbased_always_on": config.sampler = .parentBasedAlwaysOn
            case "parentbased_always_off": config.sampler = .parentBased(root: .alwaysOff)
            case "parentbased_traceidratio": config.sampler = .parentBased(root: .traceIDRatio(ratio))
            default:
                throw ConfigurationError(
                    key: "OTEL_TRACES_SAMPLER", value: v,
                    allowed: "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio",
                    source: env.source("OTEL_TRACES_SAMPLER"))
            }
        }
        if let v = env.string("SPILLWAY_EXCEPTION_STACKTRACE_SEVERITY") {
            let names: [String: Severity] = [
                "trace": .trace, "debug": .debug, "info": .info, "warn": .warn, "error": .error, "fatal": .fatal
            ]
            if v.lowercased() == "never" {
                config.exceptionStackTraces = .never
            } else if let s = names[v.lowercased()] {
                config.exceptionStackTraces = .atOrAbove(s)
            } else {
                throw ConfigurationError(
                    key: "SPILLWAY_EXCEPTION_STACKTRACE_SEVERITY", value: v, allowed: "trace, debug, info, warn, error, fatal, never",
                    source: env.source("SPILLWAY_EXCEPTION_STACKTRACE_SEVERITY"))
            }
        }
        if let ms = try env.integer("SPILLWAY_SHUTDOWN_TIMEOUT", minimum: 0) { config.shutdownTimeout = .milliseconds(ms) }
        if let v = env.string("SPILLWAY_STATUS_ADDRESS") {
            do {
                config.statusEndpoint = try PipelineConfiguration.StatusEndpoint(parsing: v)
            } catch {
                throw ConfigurationError(key: error.key, value: error.value, allowed: error.allowed, source: env.source(error.key))
            }
        }
        if let token = env.string("SPILLWAY_STATUS_CONFIG_TOKEN") {
            guard config.statusEndpoint != nil else {
                throw ConfigurationError(
                    key: "SPILLWAY_STATUS_CONFIG_TOKEN", value: "(not shown)", allowed: "set only with SPILLWAY_STATUS_ADDRESS",
                    source: env.source("SPILLWAY_STATUS_CONFIG_TOKEN"))
            }
            config.statusEndpoint?.configurationToken = token
        }
        if let v = env.string("SPILLWAY_SPILL_DIR") {
            guard !v.isEmpty else {
                throw ConfigurationError(
                    key: "SPILLWAY_SPILL_DIR", value: "\"\"", allowed: "a directory path", source: env.source("SPILLWAY_SPILL_DIR"))
            }
            config.spill = SpillConfiguration(directory: v)
        }
        try applySpill(env, &config)
        do {
            try config.exporter.validate()
        } catch {
            let name = environmentName(for: error.key)
            throw ConfigurationError(key: name, value: error.value, allowed: error.allowed, source: env.source(name))
        }
        return config
    }

    /// The process environment, read through `environ`.
    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let line = String(cString: entry)
            if let eq = line.firstIndex(of: "=") { result[String(line[..<eq])] = String(line[line.index(after: eq)...]) }
            pointer += 1
        }
        return result
    }

    private static func environmentName(for key: String) -> String {
        switch key {
        case "exporter.endpoint": return "OTEL_EXPORTER_OTLP_ENDPOINT"
        case "exporter.tracesEndpoint": return "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        case "exporter.logsEndpoint": return "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
        case "exporter.metricsEndpoint": return "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
        case "exporter.metrics.headers": return "OTEL_EXPORTER_OTLP_METRICS_HEADERS"
        case "exporter.metrics.protocol": return "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
        case "metrics.exportInterval": return "OTEL_METRIC_EXPORT_INTERVAL"
        case "metrics.exportTimeout": return "OTEL_METRIC_EXPORT_TIMEOUT"
        case "metrics.cardinalityLimit": return "SPILLWAY_METRICS_CARDINALITY_LIMIT"
        case "exporter.headers": return "OTEL_EXPORTER_OTLP_HEADERS"
        case "exporter.traces.headers": return "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
        case "exporter.logs.headers": return "OTEL_EXPORTER_OTLP_LOGS_HEADERS"
        case "exporter.protocol": return "OTEL_EXPORTER_OTLP_PROTOCOL"
        case "exporter.traces.protocol": return "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
        case "exporter.logs.protocol": return "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"
        case let pool where pool.hasPrefix("exporter.pool.endpoints"): return "SPILLWAY_EXPORTER_OTLP_POOL_ENDPOINTS"
        case "exporter.pool.mode": return "SPILLWAY_EXPORTER_OTLP_POOL_MODE"
        default:
            // exporter[.traces|.logs].tls.<file>: OTEL_EXPORTER_OTLP[_TRACES|_LOGS]_<CERTIFICATE|CLIENT_…>
            let parts = key.split(separator: ".")
            guard parts.first == "exporter", parts.count >= 3, parts[parts.count - 2] == "tls" else { return key }
            let signal = parts.count == 4 ? "_\(parts[1].uppercased())" : ""
            let variable = ["certificateFile": "CERTIFICATE", "clientCertificateFile": "CLIENT_CERTIFICATE", "clientKeyFile": "CLIENT_KEY"]
            return variable[String(parts[parts.count - 1])].map { "OTEL_EXPORTER_OTLP\(signal)_\($0)" } ?? key
        }
    }
}

/// A collector pool: `SPILLWAY_EXPORTER_OTLP_POOL_ENDPOINTS` (comma-separated) and its mode.
private func applyPool(_ env: EnvironmentReader, _ config: inout PipelineConfiguration) throws(ConfigurationError) {
    let (endpointsKey, modeKey) = ("SPILLWAY_EXPORTER_OTLP_POOL_ENDPOINTS", "SPILLWAY_EXPORTER_OTLP_POOL_MODE")
    var mode = CollectorPoolConfiguration.Mode.failover
    if let v = env.string(modeKey) {
        guard let parsed = CollectorPoolConfiguration.Mode(rawValue: v.lowercased()) else {
            throw ConfigurationError(key: modeKey, value: v, allowed: "failover, balance-by-trace", source: env.source(modeKey))
        }
        mode = parsed
    }
    guard let v = env.string(endpointsKey) else {
        if env.string(modeKey) != nil {
            throw ConfigurationError(
                key: modeKey, value: "\(mode)", allowed: "a mode only with \(endpointsKey) (the pool's endpoints)",
                source: env.source(modeKey))
        }
        return
    }
    let endpoints = v.split(separator: ",", omittingEmptySubsequences: false).map { String($0.filter { !$0.isWhitespace }) }
    guard !endpoints.isEmpty, !endpoints.contains(where: \.isEmpty) else {
        throw ConfigurationError(
            key: endpointsKey, value: v, allowed: "collector URLs separated by commas", source: env.source(endpointsKey))
    }
    config.exporter.pool = CollectorPoolConfiguration(endpoints: endpoints, mode: mode)
}

/// The spill store's keys; each needs `SPILLWAY_SPILL_DIR`, except `SPILLWAY_SPILL_IO`: a
/// host-wide choice (a container that forbids io_uring) that applies when a store exists.
private func applySpill(_ env: EnvironmentReader, _ config: inout PipelineConfiguration) throws(ConfigurationError) {
    let keys = [
        "SPILLWAY_SPILL_DURABILITY", "SPILLWAY_SPILL_MAX_BYTES", "SPILLWAY_SPILL_MAX_AGE", "SPILLWAY_SPILL_MAX_SEGMENT_BYTES",
        "SPILLWAY_SPILL_REPLAY_CONCURRENCY"
    ]
    let io = env.string("SPILLWAY_SPILL_IO")
    if let io, !["auto", "pwrite"].contains(io.lowercased()) {
        throw ConfigurationError(key: "SPILLWAY_SPILL_IO", value: io, allowed: "auto or pwrite", source: env.source("SPILLWAY_SPILL_IO"))
    }
    guard var spill = config.spill else {
        if let key = keys.first(where: { env.string($0) != nil }) {
            throw ConfigurationError(
                key: key, value: env.string(key)!, allowed: "a value only together with SPILLWAY_SPILL_DIR (no spill store is configured)",
                source: env.source(key))
        }
        return
    }
    if let v = env.string("SPILLWAY_SPILL_DURABILITY") {
        let allowed = "none, always, or interval:<milliseconds> (e.g. interval:1000)"
        switch v.lowercased() {
        case "none": spill.durability = .none
        case "always": spill.durability = .always
        default:
            guard v.lowercased().hasPrefix("interval:"), let ms = Int(v.dropFirst("interval:".count)), ms > 0 else {
                throw ConfigurationError(
                    key: "SPILLWAY_SPILL_DURABILITY", value: v, allowed: allowed, source: env.source("SPILLWAY_SPILL_DURABILITY"))
            }
            spill.durability = .interval(.milliseconds(ms))
        }
    }
    if let n = try env.integer("SPILLWAY_SPILL_MAX_BYTES", minimum: 4096) { spill.maxBytes = n }
    if let ms = try env.integer("SPILLWAY_SPILL_MAX_AGE", minimum: 1) { spill.maxAge = .milliseconds(ms) }
    if let n = try env.integer("SPILLWAY_SPILL_MAX_SEGMENT_BYTES", minimum: 4096) { spill.maxSegmentBytes = n }
    if let n = try env.integer("SPILLWAY_SPILL_REPLAY_CONCURRENCY", minimum: 1) { spill.replayConcurrency = n }
    if let io { spill.io = io.lowercased() == "pwrite" ? .pwrite : .automatic }
    do {
        try spill.validate()
    } catch {
        let name = error.key == "spill.maxBytes" ? "SPILLWAY_SPILL_MAX_BYTES" : "SPILLWAY_SPILL_MAX_SEGMENT_BYTES"
        throw ConfigurationError(key: name, value: error.value, allowed: error.allowed, source: env.source(name))
    }
    config.spill = spill
}

/// A headers value as it may be shown: the names, never the values (`api-key=<redacted>`); an
/// item without `=` may be part of a secret, so it is not shown either.
func redactedHeaders(_ text: String) -> String {
    text.split(separator: ",", omittingEmptySubsequences: false).map { item -> String in
        guard let eq = item.firstIndex(of: "=") else { return item.allSatisfy { $0 == " " || $0 == "\t" } ? "" : "<item without '='>" }
        return String(item[..<eq]) + "=<redacted>"
    }.joined(separator: ",")
}

/// The merged layers, read key by key with errors that name the key and its layer.
struct EnvironmentReader {
    let entries: [String: (value: String, source: String)]

    func string(_ name: String) -> String? {
        guard let v = entries[name]?.value.trimmingSpaces, !v.isEmpty else { return nil }
        return v
    }

    /// Where `name`'s value came from, for errors.
    func source(_ name: String) -> String { entries[name]?.source ?? "environment" }

    /// `true` or `false`, in any case.
    func boolean(_ name: String) throws(ConfigurationError) -> Bool? {
        guard let v = string(name) else { return nil }
        switch v.lowercased() {
        case "true": return true
        case "false": return false
        default: throw ConfigurationError(key: name, value: v, allowed: "true, false", source: source(name))
        }
    }

    func integer(_ name: String, minimum: Int) throws(ConfigurationError) -> Int? {
        guard let v = string(name) else { return nil }
        guard let n = Int(v), n >= minimum else {
            throw ConfigurationError(key: name, value: v, allowed: "an integer >= \(minimum)", source: source(name))
        }
        return n
    }

    /// `k=v,k2=v2` with percent-encoded values (W3C baggage octets), as OTEL_RESOURCE_ATTRIBUTES and _HEADERS use.
    func pairs(_ name: String, _ text: String) throws(ConfigurationError) -> [(String, String)] {
        var result: [(String, String)] = []
        // Header values are secrets (API keys): an error shows their names only.
        let shown = name.hasSuffix("HEADERS") ? redactedHeaders(text) : text
        for item in text.split(separator: ",") where !String(item).trimmingSpaces.isEmpty {
            guard let eq = item.firstIndex(of: "=") else {
                throw ConfigurationError(key: name, value: shown, allowed: "comma-separated key=value pairs", source: source(name))
            }
            let key = String(item[..<eq]).trimmingSpaces
            guard !key.isEmpty, let value = percentDecoded(String(item[item.index(after: eq)...]).trimmingSpaces) else {
                throw ConfigurationError(
                    key: name, value: shown, allowed: "comma-separated key=value pairs, values percent-encoded", source: source(name))
            }
            result.append((key, value))
        }
        return result
    }
}

extension String {
    var trimmingSpaces: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return String(scalars[first...last])
    }
}

func percentDecoded(_ s: String) -> String? {
    guard s.contains("%") else { return s }
    var bytes: [UInt8] = []
    var it = Array(s.utf8)[...]
    while let b = it.popFirst() {
        if b == UInt8(ascii: "%") {
            guard it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) else { return nil }
            bytes.append(v)
            it = it.dropFirst(2)
        } else {
            bytes.append(b)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}
