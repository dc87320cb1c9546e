// `import SpillwayIntegration` brings the core API too (TelemetryPipeline, PipelineConfiguration,
// SpillConfiguration, …): one import for an application.
@_exported import Resilience
