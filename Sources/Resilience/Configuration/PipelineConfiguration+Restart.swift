/// Which changes ``TelemetryPipeline/reconfigure(_:)`` refuses. Whether a setting is live is
/// stated once, by its ``ConfigurationKey/isLive``; this file only says how to read each
/// property a key sets, so that two configurations can be compared.
extension PipelineConfiguration {
    /// How to read the property each ``ConfigurationKey`` sets (its ``ConfigurationKey/property``).
    /// A key whose property is missing here fails a test: a new key must say how it compares.
    package static let propertyReaders: [String: @Sendable (PipelineConfiguration) -> String] = [
        "isEnabled (inverted)": { "\($0.isEnabled)" },
        "serviceName": { $0.serviceName ?? "default" },
        "resourceAttributes": { "\($0.resourceAttributes.sorted { $0.key < $1.key })" },
        "exporter.endpoint": { $0.exporter.endpoint },
        "exporter.tracesEndpoint": { $0.exporter.tracesEndpoint ?? "none" },
        "exporter.logsEndpoint": { $0.exporter.logsEndpoint ?? "none" },
        "exporter.metricsEndpoint": { $0.exporter.metricsEndpoint ?? "none" },
        "exporter.metrics.headers": { "\($0.exporter.metrics.headers.keys.sorted())" },
        "exporter.metrics.compression": { "\(String(describing: $0.exporter.metrics.compression))" },
        "exporter.metrics.timeout": { "\(String(describing: $0.exporter.metrics.timeout))" },
        "exporter.metrics.protocol": { "\(String(describing: $0.exporter.metrics.protocol))" },
        "exporter.metrics.insecure": { "\(String(describing: $0.exporter.metrics.insecure))" },
        "exporter.metrics.tls.certificateFile": { $0.exporter.metrics.tls.certificateFile ?? "none" },
        "exporter.metrics.tls.clientCertificateFile": { $0.exporter.metrics.tls.clientCertificateFile ?? "none" },
        "exporter.metrics.tls.clientKeyFile": { $0.exporter.metrics.tls.clientKeyFile ?? "none" },
        "statusEndpoint": { $0.statusEndpoint.map { "\($0.host):\($0.port)" } ?? "off" },
        "statusEndpoint.configurationToken": { $0.statusEndpoint?.configurationToken == nil ? "off" : "set" },  // never the token
        "metrics.exportInterval": { "\($0.metrics.exportInterval)" },
        "metrics.exportTimeout": { "\($0.metrics.exportTimeout)" },
        "metrics.temporality": { $0.metrics.temporality.rawValue },
        "metrics.histogramAggregation": { $0.metrics.histogramAggregation.rawValue },
        "metrics.exponentialMaxSize": { "\($0.metrics.exponentialMaxSize)" },
        "metrics.cardinalityLimit": { "\($0.metrics.cardinalityLimit)" },
        "exporter.headers": { "\($0.exporter.headers.keys.sorted())" },  // names only: values may be secrets
        "exporter.compression": { "\($0.exporter.compression)" },
        "exporter.timeout": { "\($0.exporter.timeout)" },
        "exporter.traces.headers": { "\($0.exporter.traces.headers.keys.sorted())" },
        "exporter.traces.compression": { "\(String(describing: $0.exporter.traces.compression))" },
        "exporter.traces.timeout": { "\(String(describing: $0.exporter.traces.timeout))" },
        "exporter.logs.headers": { "\($0.exporter.logs.headers.keys.sorted())" },
        "exporter.logs.compression": { "\(String(describing: $0.exporter.logs.compression))" },
        "exporter.logs.timeout": { "\(String(describing: $0.exporter.logs.timeout))" },
        "exporter.protocol": { "\($0.exporter.protocol)" },
        "exporter.traces.protocol": { "\(String(describing: $0.exporter.traces.protocol))" },
        "exporter.logs.protocol": { "\(String(describing: $0.exporter.logs.protocol))" },
        "exporter.insecure": { "\($0.exporter.insecure)" },
        "exporter.traces.insecure": { "\(String(describing: $0.exporter.traces.insecure))" },
        "exporter.logs.insecure": { "\(String(describing: $0.exporter.logs.insecure))" },
        "exporter.pool.endpoints": { $0.exporter.pool?.endpoints.joined(separator: ",") ?? "none" },
        "exporter.pool.mode": { $0.exporter.pool.map { "\($0.mode)" } ?? "none" },
        "exporter.tls.certificateFile": { $0.exporter.tls.certificateFile ?? "none" },
        "exporter.tls.clientCertificateFile": { $0.exporter.tls.clientCertificateFile ?? "none" },
        "exporter.tls.clientKeyFile": { $0.exporter.tls.clientKeyFile ?? "none" },
        "exporter.traces.tls.certificateFile": { $0.exporter.traces.tls.certificateFile ?? "none" },
        "exporter.traces.tls.clientCertificateFile": { $0.exporter.traces.tls.clientCertificateFile ?? "none" },
        "exporter.traces.tls.clientKeyFile": { $0.exporter.traces.tls.clientKeyFile ?? "none" },
        "exporter.logs.tls.certificateFile": { $0.exporter.logs.tls.certificateFile ?? "none" },
        "exporter.logs.tls.clientCertificateFile": { $0.exporter.logs.tls.clientCertificateFile ?? "none" },
        "exporter.logs.tls.clientKeyFile": { $0.exporter.logs.tls.clientKeyFile ?? "none" },
        "traces.scheduleDelay": { "\($0.traces.scheduleDelay)" },
        "traces.maxExportBatchSize": { "\($0.traces.maxExportBatchSize)" },
        "traces.exportTimeout": { "\($0.traces.exportTimeout)" },
        "logs.scheduleDelay": { "\($0.logs.scheduleDelay)" },
        "logs.maxExportBatchSize": { "\($0.logs.maxExportBatchSize)" },
        "logs.exportTimeout": { "\($0.logs.exportTimeout)" },
        "traces.maxConcurrentExports": { "\($0.traces.maxConcurrentExports)" },
        "traces.adaptiveConcurrency": { "\($0.traces.adaptiveConcurrency)" },
        "logs.maxConcurrentExports": { "\($0.logs.maxConcurrentExports)" },
        "logs.adaptiveConcurrency": { "\($0.logs.adaptiveConcurrency)" },
        "traces.maxBytesInFlight": { "\($0.traces.maxBytesInFlight)" },
        "logs.maxBytesInFlight": { "\($0.logs.maxBytesInFlight)" },
        "sampler": { "\($0.sampler)" },
        "limits.countLimit": { "\($0.limits.countLimit)" },
        "limits.valueLengthLimit": { "\(String(describing: $0.limits.valueLengthLimit))" },
        "limits.eventCountLimit": { "\($0.limits.eventCountLimit)" },
        "limits.linkCountLimit": { "\($0.limits.linkCountLimit)" },
        "ringCapacity": { "\($0.ringCapacity)" },
        "overflowPolicy": { "\($0.overflowPolicy)" },
        "spill": { $0.spill?.directory ?? "none" },
        "spill.durability": { "\(String(describing: $0.spill?.durability))" },
        "spill.maxBytes": { "\(String(describing: $0.spill?.maxBytes))" },
        "spill.maxAge": { "\(String(describing: $0.spill?.maxAge))" },
        "spill.maxSegmentBytes": { "\(String(describing: $0.spill?.maxSegmentBytes))" },
        "spill.io": { "\(String(describing: $0.spill?.io))" },
        "spill.replayConcurrency": { "\(String(describing: $0.spill?.replayConcurrency))" },
        "shutdownTimeout": { "\($0.shutdownTimeout)" },
        "exceptionStackTraces": { "\(String(describing: $0.exceptionStackTraces))" }
    ]

    /// Settings that only code sets (no ``ConfigurationKey``) and that need a restart. The live
    /// code-only settings are the export-error handlers (the default one and the routes').
    static let codeOnlyRestartSettings: [(name: String, read: @Sendable (PipelineConfiguration) -> String)] = [
        ("processor", { "\($0.processor)" }),
        ("serviceVersion", { $0.serviceVersion ?? "none" }),
        ("spill", { "\(String(describing: $0.spill))" }),
        (
            "routes",
            { configuration in
                let routes = configuration.routes.map { route in
                    "\(route.name) scopes=\(route.scopes) spans=\(route.spanNames) events=\(route.eventNames) metrics=\(route.metricNames) "
                        + "overflow=\(String(describing: route.overflowPolicy)) destinations=\(route.destinations)"
                }
                return "\(routes)"
            }
        ),
        (
            "destinations",
            { configuration in
                // Which destinations there are, their pools, retry and breaker: the rest of a
                // destination's exporter (endpoint, headers, TLS, …) is live, as the pipeline's is.
                let destinations = configuration.destinations.map { destination in
                    let pool = destination.exporter.pool.map { "\($0.mode) \($0.endpoints)" } ?? "none"
                    return "\(destination.name): pool=\(pool) retry=\(String(describing: destination.retry)) "
                        + "breaker=\(String(describing: destination.circuitBreaker))"
                }
                return "\(destinations)"
            }
        ),
        ("retry", { "\(String(describing: $0.retry))" }),
        ("circuitBreaker", { "\(String(describing: $0.circuitBreaker))" }),
        ("exportStages", { "\($0.exportStages.count) stages" }),
        ("selfMetrics", { "\($0.selfMetrics)" }),
        ("metrics", { "\($0.metrics)" }),
        ("statusEndpoint.servesApplicationMetrics", { "\($0.statusEndpoint?.servesApplicationMetrics ?? true)" })
    ]

    /// The settings that need a restart: every key that is not live, by property (with its
    /// variables, for the error), then the code-only ones.
    static let restartOnlySettings: [(name: String, read: @Sendable (PipelineConfiguration) -> String)] = {
        var settings: [(name: String, read: @Sendable (PipelineConfiguration) -> String)] = []
        var seen: Set<String> = []
        for key in ConfigurationKey.all where !key.isLive && key.property != "—" && !seen.contains(key.property) {
            seen.insert(key.property)
            guard let read = propertyReaders[key.property] else { continue }
            let variables = ConfigurationKey.all.filter { $0.property == key.property }.map(\.environmentVariable)
            settings.append(("\(key.property) (\(variables.joined(separator: ", ")))", read))
        }
        return settings + codeOnlyRestartSettings
    }()

    /// The first change from `self` (running) to `new` that needs a restart, as the error
    /// ``TelemetryPipeline/reconfigure(_:)`` throws; `nil` when every change is live.
    package func restartOnlyChange(to new: PipelineConfiguration) -> ConfigurationError? {
        for setting in Self.restartOnlySettings {
            let (before, after) = (setting.read(self), setting.read(new))
            if before != after {
                return ConfigurationError(
                    key: setting.name, value: after, allowed: "the running value \(before): changing it needs a restart",
                    source: "reconfigure")
            }
        }
        return nil
    }
}
