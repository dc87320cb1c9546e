import Logging
import Synchronization

extension TelemetryPipeline {
    /// The port of the status endpoint (``PipelineConfiguration/statusEndpoint``), the one the
    /// system chose when it was configured with port 0; `nil` without a status endpoint.
    public var statusEndpointPort: Int? { statusServer.withLock { $0?.port } }

    /// Starts the status endpoint (``PipelineConfiguration/statusEndpoint``): the last step of
    /// `init`. Its routes hold the pipeline weakly, so releasing the pipeline is not held up by them.
    /// - Throws: ``ConfigurationError`` for `SPILLWAY_STATUS_ADDRESS` when the address cannot be bound.
    func startStatusServer(_ endpoint: PipelineConfiguration.StatusEndpoint, executor: ExportExecutor) throws(ConfigurationError) {
        let registry = metricReader.registry
        let stats: @Sendable () -> PipelineStats = { [weak self] in self?.stats() ?? PipelineStats.empty }
        let health: @Sendable () -> PipelineHealth = { [weak self] in self?.health() ?? .unhealthy([]) }
        let running: @Sendable () -> PipelineConfiguration = { [weak self] in self?.configuration ?? PipelineConfiguration() }
        let reconfigure: @Sendable (PipelineConfiguration) async throws(ConfigurationError) -> Void = {
            [weak self] new throws(ConfigurationError) in
            guard let self else { return }
            try await self.reconfigure(new)
        }
        let application: (@Sendable () -> [[MetricRegistry.Collected]])? =
            endpoint.servesApplicationMetrics ? { @Sendable in registry.snapshot() } : nil
        let routes = StatusRoutes(
            stats: stats, health: health, configuration: running, applicationMetrics: application, reconfigure: reconfigure,
            token: endpoint.configurationToken, executor: executor)
        let server = try StatusServer(endpoint, routes: routes)
        statusServer.withLock { $0 = server }
        logger.info("status endpoint listening", metadata: ["address": "\(endpoint.host):\(server.port)"])
    }
}
