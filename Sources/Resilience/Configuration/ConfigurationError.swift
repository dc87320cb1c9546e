/// A configuration value that cannot be used, with the key, the value, where it came from and
/// what is allowed. Thrown when a pipeline is created; nothing starts with an invalid configuration.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The configuration key (`traces.maxExportBatchSize`) or environment variable (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    public var key: String
    /// The value as given.
    public var value: String
    /// What is allowed instead.
    public var allowed: String
    /// Where the value came from: `code`, `environment`.
    public var source: String

    public init(key: String, value: String, allowed: String, source: String = "code") {
        self.key = key
        self.value = value
        self.allowed = allowed
        self.source = source
    }

    public var description: String {
        "invalid configuration: \(key) = \"\(value)\" (from \(source)); allowed: \(allowed)"
    }
}
