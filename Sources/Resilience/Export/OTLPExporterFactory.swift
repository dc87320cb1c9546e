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
    let protocols = TelemetrySignal.allCases.map { configuration.resolved($0).protocol }
    if Set(protocols).count == 1 { return try make(protocols[0]) }
    // One exporter per protocol in use, shared by the signals that use it.
    var byProtocol: [OTLPProtocol: any TelemetryExporter] = [:]
    for transport in OTLPProtocol.allCases where protocols.contains(transport) { byProtocol[transport] = try make(transport) }
    return SignalSplitExporter(
        exporters: SignalTable(traces: byProtocol[protocols[0]]!, logs: byProtocol[protocols[1]]!, metrics: byProtocol[protocols[2]]!),
        distinct: Array(byProtocol.values))
}

/// Sends each signal to its own exporter (spans over gRPC and logs over HTTP, say); signals of
/// one protocol share one exporter. Thread-safety: safe from any thread, as its exporters are.
final class SignalSplitExporter: TelemetryExporter {
    let name: String
    private let exporters: SignalTable<any TelemetryExporter>
    /// Each exporter once.
    private let distinct: [any TelemetryExporter]

    init(exporters: SignalTable<any TelemetryExporter>, distinct: [any TelemetryExporter]) {
        self.exporters = exporters
        self.distinct = distinct
        self.name = distinct.map(\.name).sorted().joined(separator: "+")
    }

    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        try await exporters[batch.signal].export(batch)
    }

    func shutdown() async {
        for exporter in distinct { await exporter.shutdown() }
    }
}
