/// The OTLP exporter `configuration` asks for: ``OTLPHTTPExporter``, ``OTLPGRPCExporter``, or,
/// when the signals use different protocols, each signal its own; with a collector pool, a
/// ``CollectorPoolExporter`` over one such exporter per endpoint.
/// - Parameter pool: The pool's state (its breakers), which outlives the exporters built on it;
///   `nil` builds a new one on the continuous clock when `configuration` names a pool.
/// - Throws: ``ConfigurationError`` for an invalid setting, an unreadable TLS file, or `grpc` in
///   a build without the package trait `GRPC`.
package func makeOTLPExporter(
    _ configuration: OTLPExporterConfiguration, pool: (any CollectorRouting)? = nil
) throws(ConfigurationError) -> any TelemetryExporter {
    try configuration.validate()
    if let poolConfiguration = configuration.pool {
        let routing = pool ?? CollectorPool(poolConfiguration, policy: CircuitBreakerPolicy(), clock: ContinuousClock())
        var members: [any TelemetryExporter] = []
        for endpoint in poolConfiguration.endpoints { members.append(try makeOTLPExporter(configuration.member(endpoint))) }
        return CollectorPoolExporter(members: members, pool: routing)
    }
    func make(_ transport: OTLPProtocol) throws(ConfigurationError) -> any TelemetryExporter {
        switch transport {
        case .httpProtobuf:
            return try OTLPHTTPExporter(configuration: configuration)
        case .grpc:
            #if GRPC
                return try OTLPGRPCExporter(configuration: configuration)
            #else
                throw ConfigurationError(
                    key: "exporter.protocol", value: "grpc", allowed: "http/protobuf (grpc needs the package trait GRPC)")
            #endif
        }
    }
    let traces = configuration.resolved(.traces).protocol
    let logs = configuration.resolved(.logs).protocol
    if traces == logs { return try make(traces) }
    return SignalSplitExporter(traces: try make(traces), logs: try make(logs))
}

/// Sends each signal to its own exporter (spans over gRPC and logs over HTTP, say).
/// Thread-safety: safe from any thread, as its exporters are.
final class SignalSplitExporter: TelemetryExporter {
    let name: String
    private let traces: any TelemetryExporter
    private let logs: any TelemetryExporter

    init(traces: any TelemetryExporter, logs: any TelemetryExporter) {
        self.traces = traces
        self.logs = logs
        self.name = "\(traces.name)+\(logs.name)"
    }

    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        try await (batch.signal == .traces ? traces : logs).export(batch)
    }

    func shutdown() async {
        await traces.shutdown()
        await logs.shutdown()
    }
}
