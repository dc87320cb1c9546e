/// ``applyingLiveKeys(_:source:)``: the status endpoint's `PUT /config`.
extension PipelineConfiguration {
    /// For each live key's property: copies it from a configuration resolved from the keys given
    /// (the second) into the running one (the first). A new live key must be listed here: a test
    /// checks that every live key is.
    package static let liveSetters: [String: @Sendable (inout PipelineConfiguration, PipelineConfiguration) -> Void] = [
        "exceptionStackTraces": { $0.exceptionStackTraces = $1.exceptionStackTraces },
        "exporter.compression": { $0.exporter.compression = $1.exporter.compression },
        "exporter.endpoint": { $0.exporter.endpoint = $1.exporter.endpoint },
        "exporter.headers": { $0.exporter.headers = $1.exporter.headers },
        "exporter.insecure": { $0.exporter.insecure = $1.exporter.insecure },
        "exporter.logs.compression": { $0.exporter.logs.compression = $1.exporter.logs.compression },
        "exporter.logs.headers": { $0.exporter.logs.headers = $1.exporter.logs.headers },
        "exporter.logs.insecure": { $0.exporter.logs.insecure = $1.exporter.logs.insecure },
        "exporter.logs.protocol": { $0.exporter.logs.protocol = $1.exporter.logs.protocol },
        "exporter.logs.timeout": { $0.exporter.logs.timeout = $1.exporter.logs.timeout },
        "exporter.logs.tls.certificateFile": { $0.exporter.logs.tls.certificateFile = $1.exporter.logs.tls.certificateFile },
        "exporter.logs.tls.clientCertificateFile": {
            $0.exporter.logs.tls.clientCertificateFile = $1.exporter.logs.tls.clientCertificateFile
        },
        "exporter.logs.tls.clientKeyFile": { $0.exporter.logs.tls.clientKeyFile = $1.exporter.logs.tls.clientKeyFile },
        "exporter.logsEndpoint": { $0.exporter.logsEndpoint = $1.exporter.logsEndpoint },
        "exporter.metrics.compression": { $0.exporter.metrics.compression = $1.exporter.metrics.compression },
        "exporter.metrics.headers": { $0.exporter.metrics.headers = $1.exporter.metrics.headers },
        "exporter.metrics.insecure": { $0.exporter.metrics.insecure = $1.exporter.metrics.insecure },
        "exporter.metrics.protocol": { $0.exporter.metrics.protocol = $1.exporter.metrics.protocol },
        "exporter.metrics.timeout": { $0.exporter.metrics.timeout = $1.exporter.metrics.timeout },
        "exporter.metrics.tls.certificateFile": { $0.exporter.metrics.tls.certificateFile = $1.exporter.metrics.tls.certificateFile },
        "exporter.metrics.tls.clientCertificateFile": {
            $0.exporter.metrics.tls.clientCertificateFile = $1.exporter.metrics.tls.clientCertificateFile
        },
        "exporter.metrics.tls.clientKeyFile": { $0.exporter.metrics.tls.clientKeyFile = $1.exporter.metrics.tls.clientKeyFile },
        "exporter.metricsEndpoint": { $0.exporter.metricsEndpoint = $1.exporter.metricsEndpoint },
        "exporter.protocol": { $0.exporter.protocol = $1.exporter.protocol },
        "exporter.timeout": { $0.exporter.timeout = $1.exporter.timeout },
        "exporter.tls.certificateFile": { $0.exporter.tls.certificateFile = $1.exporter.tls.certificateFile },
        "exporter.tls.clientCertificateFile": { $0.exporter.tls.clientCertificateFile = $1.exporter.tls.clientCertificateFile },
        "exporter.tls.clientKeyFile": { $0.exporter.tls.clientKeyFile = $1.exporter.tls.clientKeyFile },
        "exporter.traces.compression": { $0.exporter.traces.compression = $1.exporter.traces.compression },
        "exporter.traces.headers": { $0.exporter.traces.headers = $1.exporter.traces.headers },
        "exporter.traces.insecure": { $0.exporter.traces.insecure = $1.exporter.traces.insecure },
        "exporter.traces.protocol": { $0.exporter.traces.protocol = $1.exporter.traces.protocol },
        "exporter.traces.timeout": { $0.exporter.traces.timeout = $1.exporter.traces.timeout },
        "exporter.traces.tls.certificateFile": { $0.exporter.traces.tls.certificateFile = $1.exporter.traces.tls.certificateFile },
        "exporter.traces.tls.clientCertificateFile": {
            $0.exporter.traces.tls.clientCertificateFile = $1.exporter.traces.tls.clientCertificateFile
        },
        "exporter.traces.tls.clientKeyFile": { $0.exporter.traces.tls.clientKeyFile = $1.exporter.traces.tls.clientKeyFile },
        "exporter.tracesEndpoint": { $0.exporter.tracesEndpoint = $1.exporter.tracesEndpoint },
        "logs.adaptiveConcurrency": { $0.logs.adaptiveConcurrency = $1.logs.adaptiveConcurrency },
        "logs.exportTimeout": { $0.logs.exportTimeout = $1.logs.exportTimeout },
        "logs.maxBytesInFlight": { $0.logs.maxBytesInFlight = $1.logs.maxBytesInFlight },
        "logs.maxConcurrentExports": { $0.logs.maxConcurrentExports = $1.logs.maxConcurrentExports },
        "logs.maxExportBatchSize": { $0.logs.maxExportBatchSize = $1.logs.maxExportBatchSize },
        "logs.scheduleDelay": { $0.logs.scheduleDelay = $1.logs.scheduleDelay },
        "sampler": { $0.sampler = $1.sampler },
        "shutdownTimeout": { $0.shutdownTimeout = $1.shutdownTimeout },
        "traces.adaptiveConcurrency": { $0.traces.adaptiveConcurrency = $1.traces.adaptiveConcurrency },
        "traces.exportTimeout": { $0.traces.exportTimeout = $1.traces.exportTimeout },
        "traces.maxBytesInFlight": { $0.traces.maxBytesInFlight = $1.traces.maxBytesInFlight },
        "traces.maxConcurrentExports": { $0.traces.maxConcurrentExports = $1.traces.maxConcurrentExports },
        "traces.maxExportBatchSize": { $0.traces.maxExportBatchSize = $1.traces.maxExportBatchSize },
        "traces.scheduleDelay": { $0.traces.scheduleDelay = $1.traces.scheduleDelay },
        "isEnabled (inverted)": { $0.isEnabled = $1.isEnabled }
    ]

    /// This configuration with `values` — live keys by their environment variable names, as
    /// ``ConfigurationKey/all`` has them — applied on top; everything else stays as it runs.
    /// - Throws: ``ConfigurationError`` for an unknown key, a key that needs a restart, or an
    ///   invalid value, naming the key (its `source` is `source`).
    package func applyingLiveKeys(_ values: [String: String], source: String) throws(ConfigurationError) -> PipelineConfiguration {
        var properties: [String] = []
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            guard let key = ConfigurationKey.all.first(where: { $0.environmentVariable == name }) else {
                throw ConfigurationError(
                    key: name, value: value, allowed: "a key of the configuration table (docs/configuration.md)", source: source)
            }
            guard key.isLive, Self.liveSetters[key.property] != nil else {
                throw ConfigurationError(
                    key: name, value: value, allowed: "a live key: changing \(name) needs a restart", source: source)
            }
            properties.append(key.property)
        }
        let given = try Self.resolve(layers: [ConfigurationLayer(name: source, values: values)])
        var new = self
        for property in properties { Self.liveSetters[property]?(&new, given) }
        return new
    }
}
