/// The documents of the status endpoint (``PipelineConfiguration/StatusEndpoint``): the stats
/// and the health as JSON, the running configuration with its secrets left out.
enum StatusDocuments {
    /// `{"status": "degraded", "reasons": ["retrying"]}`.
    static func health(_ health: PipelineHealth) -> String {
        let status =
            switch health {
            case .healthy: "healthy"
            case .degraded: "degraded"
            case .unhealthy: "unhealthy"
            }
        return "{\"status\":\(quoted(status)),\"reasons\":[\(health.reasons.map { quoted($0.rawValue) }.joined(separator: ","))]}\n"
    }

    /// Every figure of ``PipelineStats``: per signal (`spans`, `logs`, `metrics`), the exports,
    /// the breaker, the handlers, the collectors of a pool and each destination's own books.
    static func stats(_ stats: PipelineStats) -> String { object(stats) + "\n" }

    private static func object(_ stats: PipelineStats) -> String {
        var fields: [(String, String)] = [
            ("spans", signal(stats.spans)), ("logs", signal(stats.logs)), ("metrics", signal(stats.metrics)),
            ("metric_series", "\(stats.metricSeries)"), ("metric_attribute_sets_overflowed", "\(stats.metricAttributeSetsOverflowed)"),
            ("ring_bytes_in_use", "\(stats.ringBytesInUse)"), ("ring_capacity", "\(stats.ringCapacity)"),
            ("export_attempts", "\(stats.exportAttempts)"), ("export_successes", "\(stats.exportSuccesses)"),
            ("export_failures", "\(stats.exportFailures)"), ("retries", "\(stats.retries)"),
            ("batches_held_in_memory", "\(stats.batchesHeldInMemory)"),
            ("circuit_breaker_state", stats.circuitBreakerState.map { quoted($0.rawValue) } ?? "null"),
            ("circuit_breaker_trips", "\(stats.circuitBreakerTrips)"),
            ("last_success_time_unix_nano", stats.lastSuccessTime.map { "\($0)" } ?? "null"),
            ("last_failure_time_unix_nano", stats.lastFailureTime.map { "\($0)" } ?? "null"),
            ("last_error", stats.lastError.map(quoted) ?? "null"), ("misconfiguration", stats.misconfiguration.map(quoted) ?? "null"),
            ("handler_events", "\(stats.handlerEvents)"), ("handler_events_lost", "\(stats.handlerEventsLost)"),
            ("handler_errors", "\(stats.handlerErrors)"), ("handler_batches_omitted", "\(stats.handlerBatchesOmitted)")
        ]
        if !stats.collectors.isEmpty {
            let collectors = stats.collectors.map { c in
                "{\"endpoint\":\(quoted(c.endpoint)),\"circuit_breaker_state\":\(quoted(c.circuitBreakerState.rawValue)),"
                    + "\"circuit_breaker_trips\":\(c.circuitBreakerTrips)}"
            }
            fields.append(("collectors", "[" + collectors.joined(separator: ",") + "]"))
        }
        if !stats.destinations.isEmpty {
            let destinations = stats.destinations.sorted { $0.key < $1.key }.map { "\(quoted($0.key)):\(object($0.value))" }
            fields.append(("destinations", "{" + destinations.joined(separator: ",") + "}"))
        }
        return "{" + fields.map { "\(quoted($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    private static func signal(_ s: PipelineStats.Signal) -> String {
        let dropped = s.dropped.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\(quoted($0.key.rawValue)):\($0.value)" }
        let fields: [(String, Int)] = [
            ("emitted", s.emitted), ("exported", s.exported), ("dropped_total", s.droppedTotal), ("spilled", s.spilled),
            ("replayed", s.replayed), ("recovered", s.recovered), ("rejected", s.rejected), ("on_disk", s.onDisk),
            ("rejected_on_disk", s.rejectedOnDisk), ("forwarded", s.forwarded), ("pending", s.pending),
            ("export_window", s.exportWindow), ("export_window_peak", s.exportWindowPeak)
        ]
        return "{" + fields.map { "\(quoted($0.0)):\($0.1)" }.joined(separator: ",") + ",\"dropped\":{" + dropped.joined(separator: ",")
            + "}}"
    }

    /// The running configuration: every ``ConfigurationKey`` by its environment variable, as the
    /// pipeline reads it. Header values are left out (their names only), and so is a password in
    /// an endpoint's URL; the bearer token of the endpoint itself is never shown.
    static func configuration(_ configuration: PipelineConfiguration) -> String {
        var fields: [String] = []
        for key in ConfigurationKey.all {
            guard let read = PipelineConfiguration.propertyReaders[key.property] else { continue }
            var value = read(configuration)
            // The property is `isEnabled`; the variable says the opposite.
            if key.environmentVariable == "OTEL_SDK_DISABLED" { value = configuration.isEnabled ? "false" : "true" }
            if key.environmentVariable.hasSuffix("ENDPOINT") || key.environmentVariable.hasSuffix("ENDPOINTS") {
                value = redactingUserInfo(value)
            }
            fields.append("\(quoted(key.environmentVariable)):\(quoted(value))")
        }
        return "{" + fields.joined(separator: ",") + "}\n"
    }

    /// `https://user:secret@host/` → `https://<redacted>@host/`.
    static func redactingUserInfo(_ url: String) -> String {
        url.split(separator: ",", omittingEmptySubsequences: false).map { part -> String in
            guard let scheme = part.firstRange(of: "://"), let at = part[scheme.upperBound...].firstIndex(of: "@") else {
                return String(part)
            }
            let slash = part[scheme.upperBound...].firstIndex(of: "/") ?? part.endIndex
            guard at < slash else { return String(part) }
            return String(part[..<scheme.upperBound]) + "<redacted>" + String(part[at...])
        }.joined(separator: ",")
    }

    /// A JSON string.
    static func quoted(_ text: String) -> String {
        var buffer = JSONBuffer()
        buffer.text(text)
        return String(decoding: buffer.bytes, as: UTF8.self)
    }
}
