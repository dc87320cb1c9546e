import Logging
public import ServiceLifecycle

extension TelemetryPipeline: Service {
    /// Runs the pipeline as a swift-service-lifecycle `Service` until graceful shutdown.
    ///
    /// The pipeline works from its creation; `run()` only waits. On graceful shutdown (SIGTERM
    /// through a `ServiceGroup`) or cancellation it calls ``shutdown(deadline:)`` with
    /// ``PipelineConfiguration/shutdownTimeout``: intake stops, the ring is drained and exported
    /// before the deadline, what is left is spilled (with a spill store) or counted as dropped
    /// (`shutdown`), and the spill files are synced. Put it *first* in the group's services: a
    /// `ServiceGroup` shuts services down in reverse order, so the pipeline then drains after the
    /// services that emit have stopped.
    public func run() async throws {
        try? await gracefulShutdown()
        let timeout = configuration.shutdownTimeout
        let summary = await shutdown(deadline: .now + timeout)
        if summary.deadlineExceeded {
            logger.warning("telemetry pipeline shut down after its \(timeout) deadline", metadata: ["stats": "\(summary.stats)"])
        }
    }
}
