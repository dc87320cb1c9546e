/// A named collector (or pool of collectors) that routes send to, besides or instead of the
/// pipeline's own exporter.
///
/// A destination has everything the pipeline's exporter has, of its own: endpoint, protocol,
/// TLS, headers, compression and pool (``exporter``), retry policy and circuit breaker, export
/// window, and — when the pipeline has a spill store — its own part of the store, in
/// `<spill directory>/destinations/<name>`, replayed to this destination only. Its books are
/// its own (``PipelineStats/destinations``), and every ``ExportFailureEvent`` of it names it
/// (``ExportFailureEvent/destination``).
///
/// A route sends to the destinations it names (``ExportRoute/destinations``), each getting every
/// record of the route once: a fan-out. The pipeline's own exporter is the destination named
/// ``ExportDestination/pipelineExporter`` (`"default"`), which routes without destinations use.
///
/// ```swift
/// configuration.destinations = [
///     ExportDestination("compliance", exporter: OTLPExporterConfiguration(endpoint: "https://audit.example:4318"))
/// ]
/// configuration.routes = [
///     ExportRoute("audit", scopes: ["audit.*"], destinations: ["compliance", ExportDestination.pipelineExporter])
/// ]
/// ```
///
/// A destination that cannot keep up does not hold back the others: when all of its export
/// slots are busy, its copy of a batch goes to its part of the spill store, or — without a
/// spill store — is dropped (``DropReason/destinationBusy``), counted and reported to the
/// route's handlers. Destinations need the batch processor. Their exporter settings are live
/// (``TelemetryPipeline/reconfigure(_:)`` moves a destination to a new endpoint, and reads its
/// TLS files again, as it does the pipeline exporter's); which destinations there are, their
/// pools, retry and breaker need a restart. A configuration file can define them too
/// (`spillway.destinations`, with `spillway.routes`: see `TelemetryConfigurationSource`).
public struct ExportDestination: Sendable, Hashable {
    /// The name routes use, in stats, events and the spill store's directory: letters, digits,
    /// `.`, `_` and `-`; unique; not `"default"`.
    public var name: String
    /// Where and how this destination's batches go. - Default value: the OTel defaults
    /// (`http://localhost:4318`).
    public var exporter: OTLPExporterConfiguration
    /// How failed attempts are retried; `nil` for no retries. - Default value: ``ExportRetryPolicy/init()``.
    public var retry: ExportRetryPolicy?
    /// When attempts stop and batches wait (on disk, with a spill store); `nil` for none. With a
    /// pool (``OTLPExporterConfiguration/pool``), each endpoint has a breaker with this policy.
    /// - Default value: ``CircuitBreakerPolicy/init()``.
    public var circuitBreaker: CircuitBreakerPolicy?

    /// A destination named `name`.
    public init(
        _ name: String, exporter: OTLPExporterConfiguration = OTLPExporterConfiguration(),
        retry: ExportRetryPolicy? = ExportRetryPolicy(), circuitBreaker: CircuitBreakerPolicy? = CircuitBreakerPolicy()
    ) {
        self.name = name
        self.exporter = exporter
        self.retry = retry
        self.circuitBreaker = circuitBreaker
    }

    /// The name of the pipeline's own exporter (``PipelineConfiguration/exporter``) in
    /// ``ExportRoute/destinations``: `"default"`.
    public static let pipelineExporter = "default"

    /// At most this many destinations besides the pipeline's exporter.
    public static let maximumCount = 16
}

extension PipelineConfiguration {
    /// Checks the destinations and the routes' references to them.
    func validateDestinations() throws(ConfigurationError) {
        if destinations.count > ExportDestination.maximumCount {
            throw ConfigurationError(
                key: "destinations", value: "\(destinations.count) destinations", allowed: "at most \(ExportDestination.maximumCount)")
        }
        var names: Set<String> = [ExportDestination.pipelineExporter]
        for (i, destination) in destinations.enumerated() {
            let valid =
                !destination.name.isEmpty && destination.name.utf8.count <= 64
                && destination.name.unicodeScalars.allSatisfy {
                    ($0.isASCII && $0.properties.isAlphabetic) || "0123456789._-".unicodeScalars.contains($0)
                }
                && destination.name != "." && destination.name != ".."
            if !valid || !names.insert(destination.name).inserted {
                throw ConfigurationError(
                    key: "destinations[\(i)].name", value: destination.name,
                    allowed: "a unique name of ASCII letters, digits, '.', '_' and '-' (at most 64), other than \"default\"")
            }
            do {
                try destination.exporter.validate()
            } catch {
                throw ConfigurationError(
                    key: "destinations[\(i)].\(error.key)", value: error.value, allowed: error.allowed, source: error.source)
            }
            try destination.retry?.validate(key: "destinations[\(i)].retry")
            try destination.circuitBreaker?.validate(key: "destinations[\(i)].circuitBreaker")
        }
        let named = routes.contains { !$0.destinations.isEmpty }
        if (named || !destinations.isEmpty) && processor != .batch {
            throw ConfigurationError(key: "destinations", value: "\(processor)", allowed: "destinations need the batch processor")
        }
        for (i, route) in routes.enumerated() {
            var seen: Set<String> = []
            for name in route.destinations where !names.contains(name) || !seen.insert(name).inserted {
                throw ConfigurationError(
                    key: "routes[\(i)].destinations", value: name,
                    allowed: "names of destinations, each once: " + names.sorted().joined(separator: ", "))
            }
        }
    }

    /// A destination's part of the spill store: its own directory, and an equal share of the
    /// store's byte limit with the pipeline's exporter and the other destinations.
    func spill(for destination: String?) -> SpillConfiguration? {
        guard var spill, !destinations.isEmpty else { return spill }
        let shares = destinations.count + 1
        spill.maxBytes = max(spill.maxBytes / shares, spill.maxSegmentBytes)
        if let destination { spill.directory += "/destinations/" + destination }
        return spill
    }
}
