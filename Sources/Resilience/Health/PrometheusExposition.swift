#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The Prometheus text exposition format (version 0.0.4) of the pipeline's books and, when
/// asked, of the application's swift-metrics series (``MetricRegistry``): what the status
/// endpoint's `GET /metrics` answers, for a scraper beside the OTLP export.
///
/// The books are `spillway_*` series with a `signal` label (`traces`, `logs`, `metrics`) and, for
/// an ``ExportDestination``'s books, a `destination` label. Application series keep their
/// swift-metrics label as the name, with every character Prometheus does not allow made `_`:
/// counters as `<name>_total`, meters as gauges, recorders and timers as histograms
/// (cumulative `_bucket{le=…}`, `_sum`, `_count`; an exponential histogram's `le` bounds are its
/// buckets' upper bounds, the text format having no native histograms).
enum PrometheusExposition {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    static func render(stats: PipelineStats, health: PipelineHealth, application: [[MetricRegistry.Collected]]?) -> String {
        var out = ""
        books(stats, into: &out)
        let level =
            switch health {
            case .healthy: 0
            case .degraded: 1
            case .unhealthy: 2
            }
        family(&out, "spillway_health", "gauge", "0 healthy, 1 degraded, 2 unhealthy (GET /health says why)")
        out += "spillway_health \(level)\n"
        if let application { self.application(application, into: &out) }
        return out
    }

    private static func books(_ stats: PipelineStats, into out: inout String) {
        var books: [(labels: [(String, String)], stats: PipelineStats)] = [([], stats)]
        for (name, destination) in stats.destinations.sorted(by: { $0.key < $1.key }) {
            books.append(([("destination", name)], destination))
        }
        let counters: [(String, String, (PipelineStats.Signal) -> Int)] = [
            ("spillway_records_emitted_total", "records handed to the pipeline (metrics: data points collected)", { $0.emitted }),
            ("spillway_records_exported_total", "records the collector acknowledged", { $0.exported }),
            ("spillway_records_spilled_total", "records written to the spill store", { $0.spilled }),
            ("spillway_records_replayed_total", "records replayed from the spill store and acknowledged", { $0.replayed }),
            ("spillway_records_recovered_total", "records found in the spill store at start", { $0.recovered }),
            ("spillway_records_rejected_total", "records the collector refused for the client's configuration, kept", { $0.rejected }),
            ("spillway_records_forwarded_total", "records handed to other destinations", { $0.forwarded })
        ]
        let signals: [(String, (PipelineStats) -> PipelineStats.Signal)] = [("traces", \.spans), ("logs", \.logs), ("metrics", \.metrics)]
        for (name, help, read) in counters {
            family(&out, name, "counter", help)
            for book in books {
                for (signal, pick) in signals { sample(&out, name, book.labels + [("signal", signal)], Double(read(pick(book.stats)))) }
            }
        }
        family(&out, "spillway_records_dropped_total", "counter", "records dropped, by reason")
        for book in books {
            for (signal, pick) in signals {
                for (reason, count) in pick(book.stats).dropped.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                    sample(
                        &out, "spillway_records_dropped_total", book.labels + [("signal", signal), ("reason", reason.rawValue)],
                        Double(count))
                }
            }
        }
        for (name, help, read) in [
            ("spillway_records_on_disk", "records in the spill store now, not yet delivered", { (s: PipelineStats.Signal) in s.onDisk }),
            ("spillway_records_pending", "records in the ring, a batch or an export under way", { $0.pending })
        ] {
            family(&out, name, "gauge", help)
            for book in books {
                for (signal, pick) in signals { sample(&out, name, book.labels + [("signal", signal)], Double(read(pick(book.stats)))) }
            }
        }
        let totals: [(String, String, String, (PipelineStats) -> Int)] = [
            ("spillway_export_attempts_total", "counter", "export requests sent", { $0.exportAttempts }),
            ("spillway_export_successes_total", "counter", "export requests the collector accepted", { $0.exportSuccesses }),
            ("spillway_export_failures_total", "counter", "export requests that failed", { $0.exportFailures }),
            ("spillway_export_retries_total", "counter", "retries scheduled", { $0.retries }),
            ("spillway_batches_held_in_memory", "gauge", "batches waiting in memory for the collector", { $0.batchesHeldInMemory }),
            ("spillway_circuit_breaker_trips_total", "counter", "times the breaker opened", { $0.circuitBreakerTrips }),
            (
                "spillway_circuit_breaker_state", "gauge", "0 closed, 1 half-open, 2 open",
                { s in s.circuitBreakerState.map { $0 == .closed ? 0 : $0 == .halfOpen ? 1 : 2 } ?? 0 }
            ),
            ("spillway_ring_bytes_in_use", "gauge", "bytes claimed in the ring", { $0.ringBytesInUse }),
            ("spillway_ring_capacity_bytes", "gauge", "the ring's capacity", { $0.ringCapacity }),
            ("spillway_handler_events_total", "counter", "export failure events produced", { $0.handlerEvents }),
            ("spillway_handler_events_lost_total", "counter", "events discarded by a full queue", { $0.handlerEventsLost }),
            ("spillway_handler_errors_total", "counter", "handler calls that threw", { $0.handlerErrors }),
            ("spillway_metric_series", "gauge", "application metric series in use", { $0.metricSeries }),
            (
                "spillway_metric_attribute_sets_overflowed_total", "counter", "attribute sets recorded into an overflow series",
                { $0.metricAttributeSetsOverflowed }
            )
        ]
        for (name, type, help, read) in totals {
            family(&out, name, type, help)
            for book in books
            where book.labels.isEmpty
                || !name.hasPrefix("spillway_ring") && !name.hasPrefix("spillway_handler")
                    && !name.hasPrefix("spillway_metric")
            {
                sample(&out, name, book.labels, Double(read(book.stats)))
            }
        }
    }

    private static func application(_ families: [[MetricRegistry.Collected]], into out: inout String) {
        var seen: Set<String> = []
        for points in families {
            let series = points[0].series
            let base = name(series.name)
            switch series.instrument {
            case .counter, .floatingPointCounter:
                let total = base.hasSuffix("_total") ? base : base + "_total"
                guard seen.insert(total).inserted else { continue }
                family(&out, total, "counter", series.description)
                for point in points { sample(&out, total, labels(series: point.series), point.value) }
            case .gauge:
                guard seen.insert(base).inserted else { continue }
                family(&out, base, "gauge", series.description)
                for point in points { sample(&out, base, labels(series: point.series), point.value) }
            case .histogram, .exponentialHistogram:
                guard seen.insert(base).inserted else { continue }
                family(&out, base, "histogram", series.description)
                for point in points {
                    let labels = labels(series: point.series)
                    var cumulative: UInt64 = 0
                    for (bound, count) in classicBuckets(point) {
                        cumulative += count
                        sample(&out, base + "_bucket", labels + [("le", number(bound))], Double(cumulative))
                    }
                    sample(&out, base + "_sum", labels, point.value)
                    sample(&out, base + "_count", labels, Double(cumulative))
                }
            }
        }
    }

    /// A histogram point's buckets as (upper bound, count), in increasing order, +∞ last.
    static func classicBuckets(_ point: MetricRegistry.Collected) -> [(Double, UInt64)] {
        guard let histogram = point.exponential else {
            let bounds = point.series.boundaries
            return point.bucketCounts.enumerated().map { ($0.offset < bounds.count ? bounds[$0.offset] : .infinity, $0.element) }
        }
        // Bucket i at scale s holds magnitudes (2^(i·2^−s), 2^((i+1)·2^−s)].
        func bound(_ index: Int) -> Double { exp2(Double(index) * exp2(Double(-histogram.scale))) }
        var result: [(Double, UInt64)] = []
        let negative = histogram.negative
        for (i, count) in negative.counts.enumerated().reversed() { result.append((-bound(negative.offset + i), count)) }
        result.append((0, histogram.zeroCount))
        let positive = histogram.positive
        for (i, count) in positive.counts.enumerated() { result.append((bound(positive.offset + i + 1), count)) }
        result.append((.infinity, 0))
        return result
    }

    private static func labels(series: MetricSeries) -> [(String, String)] {
        series.attributes.map { attribute in
            let value: String
            switch attribute.value {
            case .string(let s): value = s
            case .bool(let b): value = b ? "true" : "false"
            case .int(let i): value = "\(i)"
            case .double(let d): value = number(d)
            default: value = "\(attribute.value)"
            }
            return (name(attribute.key), value)
        }
    }

    private static func family(_ out: inout String, _ name: String, _ type: String, _ help: String) {
        if !help.isEmpty { out += "# HELP \(name) \(help.replacing("\\", with: "\\\\").replacing("\n", with: "\\n"))\n" }
        out += "# TYPE \(name) \(type)\n"
    }

    private static func sample(_ out: inout String, _ name: String, _ labels: [(String, String)], _ value: Double) {
        out += name
        if !labels.isEmpty {
            out += "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        out += " " + number(value) + "\n"
    }

    /// A Prometheus metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*` (labels without `:`).
    static func name(_ raw: String) -> String {
        var result = String(
            raw.unicodeScalars.map { scalar -> Character in
                let ok =
                    scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_" || scalar == ":")
                return ok ? Character(scalar) : "_"
            })
        if result.isEmpty || result.first!.isNumber { result = "_" + result }
        return result
    }

    private static func escape(_ value: String) -> String {
        value.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: "\\n")
    }

    private static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
