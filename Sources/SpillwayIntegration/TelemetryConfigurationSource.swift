import Configuration
import Foundation
public import Logging
public import Resilience
public import ServiceLifecycle
import Synchronization
import SystemPackage
import Yams

/// The pipeline's configuration from layered sources — defaults < environment < file < code —
/// optionally reloaded while the service runs.
///
/// ```swift
/// let source = try await TelemetryConfigurationSource(file: "/etc/checkout/telemetry.yaml", reloading: true) {
///     $0.serviceName = "checkout"          // code wins over every layer
/// }
/// let pipeline = try TelemetryPipeline(configuration: source.configuration())
/// source.attach(pipeline)                  // reloads go to pipeline.reconfigure(_:)
/// // run `source` in the ServiceGroup beside the pipeline
/// ```
///
/// **The file** is JSON (`.json`) or YAML (`.yaml`, `.yml`), read by apple/swift-configuration.
/// Its keys are those of ``ConfigurationKey/all`` in dotted form — the environment variable in
/// lower case with dots: `OTEL_EXPORTER_OTLP_ENDPOINT` is `otel.exporter.otlp.endpoint` — nested
/// as objects, with the same value syntax as the variables (numbers may be numbers):
///
/// ```yaml
/// otel:
///   exporter:
///     otlp:
///       endpoint: http://collector:4318
///   bsp:
///     schedule:
///       delay: 1000
/// spillway:
///   spill:
///     dir: /var/spool/checkout
/// ```
///
/// It may also define `spillway.destinations` and `spillway.routes`, each a map from a name to its
/// settings (a destination: the exporter's keys without `otel.exporter.otlp.`; a route: `scopes`,
/// `span_names`, `event_names`, `metric_names`, `destinations`, `overflow`, `order`); they replace the
/// configuration's lists before the code layer runs, which can still add handlers:
///
/// ```yaml
/// spillway:
///   destinations:
///     compliance: {endpoint: "https://audit.example:4318", headers: "api-key=secret"}
///   routes:
///     audit: {scopes: ["audit.*"], destinations: [compliance, default]}
/// ```
///
/// **Reloading**: with `reloading: true` the file is checked every `pollInterval` and at once on
/// `SIGHUP`. Each change is resolved again through every layer and handed to each attached
/// pipeline's ``TelemetryPipeline/reconfigure(_:)``: live keys apply; an invalid value, or a change
/// to a key that needs a restart, is refused as a whole, logged with the key, value and source,
/// reported to ``onReload(_:)``, and the running configuration stays.
///
/// Thread-safety: safe from any thread. Run it (it is a swift-service-lifecycle `Service`) for
/// reloads to happen; without `reloading`, `run()` returns at once.
public final class TelemetryConfigurationSource: Service, Sendable {
    /// The outcome of one reload: the configuration applied, or why it was refused.
    public typealias ReloadOutcome = Result<PipelineConfiguration, ConfigurationError>

    private let environment: ConfigurationLayer
    private let filePath: String?
    private let provider: (any ConfigProvider)?
    private let reloading: (any Service)?
    private let overrides: @Sendable (inout PipelineConfiguration) -> Void
    private let pipelines = Mutex<[TelemetryPipeline]>([])
    private let reloadObservers = Mutex<[@Sendable (ReloadOutcome) -> Void]>([])
    private let logger: Logger

    /// - Parameters:
    ///   - environment: The environment layer. - Default value: the process environment.
    ///   - file: A JSON or YAML file, or `nil` for none.
    ///   - reloading: Whether ``run()`` watches the file. - Default value: `false`.
    ///   - pollInterval: How often a reloading file is checked (`SIGHUP` checks at once). - Default value: 15 s.
    ///   - logger: Where refused reloads are reported. - Default value: label `spillway.configuration`.
    ///   - overrides: Values set in code; applied last, on every resolution.
    /// - Throws: ``ConfigurationError`` (key `file`) when the file cannot be read or parsed, or its
    ///   extension is not `.json`, `.yaml` or `.yml`.
    public init(
        environment: [String: String] = PipelineConfiguration.processEnvironment(), file: String? = nil, reloading: Bool = false,
        pollInterval: Duration = .seconds(15), logger: Logger = Logger(label: "spillway.configuration"),
        overrides: @escaping @Sendable (inout PipelineConfiguration) -> Void = { _ in }
    ) async throws(ConfigurationError) {
        self.environment = ConfigurationLayer(environment: environment)
        self.filePath = file
        self.overrides = overrides
        self.logger = logger
        guard let file else {
            (provider, self.reloading) = (nil, nil)
            return
        }
        let path = FilePath(file)
        let lower = file.lowercased()
        do {
            switch (lower.hasSuffix(".json"), lower.hasSuffix(".yaml") || lower.hasSuffix(".yml"), reloading) {
            case (true, _, false):
                provider = try await FileProvider<JSONSnapshot>(filePath: path)
                self.reloading = nil
            case (true, _, true):
                let p = try await ReloadingFileProvider<JSONSnapshot>(filePath: path, pollInterval: pollInterval, logger: logger)
                (provider, self.reloading) = (p, p)
            case (false, true, false):
                provider = try await FileProvider<YAMLSnapshot>(filePath: path)
                self.reloading = nil
            case (false, true, true):
                let p = try await ReloadingFileProvider<YAMLSnapshot>(filePath: path, pollInterval: pollInterval, logger: logger)
                (provider, self.reloading) = (p, p)
            default:
                throw ConfigurationError(key: "file", value: file, allowed: "a .json, .yaml or .yml file", source: "code")
            }
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(key: "file", value: file, allowed: "a readable JSON or YAML file (\(error))", source: "code")
        }
    }

    /// The configuration of the layers as they are now: defaults < environment < file < code.
    /// - Throws: ``ConfigurationError`` naming the key, the value, the layer it came from (for
    ///   the file: its path and the dotted key) and what is allowed.
    public func configuration() throws(ConfigurationError) -> PipelineConfiguration {
        try resolve(provider?.snapshot())
    }

    /// Sends every later reload to `pipeline`'s ``TelemetryPipeline/reconfigure(_:)``.
    public func attach(_ pipeline: TelemetryPipeline) {
        pipelines.withLock { $0.append(pipeline) }
    }

    /// Calls `body` after each reload with its outcome: the configuration applied, or the error
    /// that refused it (the running configuration then stays).
    public func onReload(_ body: @escaping @Sendable (ReloadOutcome) -> Void) {
        reloadObservers.withLock { $0.append(body) }
    }

    /// Watches the file (with `reloading: true`) until graceful shutdown or cancellation.
    public func run() async throws {
        guard let reloading, let provider else { return }
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await reloading.run() }
                group.addTask {
                    try await provider.watchSnapshot { updates in
                        var first = true
                        for try await snapshot in updates {
                            if first {
                                first = false
                                continue
                            }  // the initial snapshot: already applied
                            await self.apply(snapshot)
                        }
                    }
                }
            }
        }
    }

    private func apply(_ snapshot: any ConfigSnapshot) async {
        let outcome: ReloadOutcome
        do {
            let next = try resolve(snapshot)
            for pipeline in pipelines.withLock({ $0 }) { try await pipeline.reconfigure(next) }
            outcome = .success(next)
        } catch {
            logger.error(
                "configuration reload refused; the running configuration stays",
                metadata: [
                    "key": "\(error.key)", "value": "\(error.value)", "source": "\(error.source)", "allowed": "\(error.allowed)"
                ])
            outcome = .failure(error)
        }
        for observer in reloadObservers.withLock({ $0 }) { observer(outcome) }
    }

    private func resolve(_ snapshot: (any ConfigSnapshot)?) throws(ConfigurationError) -> PipelineConfiguration {
        var layers = [environment]
        var fileRoutes = FileRoutes.Parsed()
        if let snapshot, let filePath {
            // Gone meanwhile: the snapshot stands, with the routes of code.
            if let tree = Self.tree(file: filePath) {
                try Self.checkKeys(tree, path: filePath)
                fileRoutes = try FileRoutes.parse(tree, source: "file \(filePath)")
            }
            layers.append(Self.layer(snapshot, name: "file \(filePath)"))
        }
        var configuration = try PipelineConfiguration.resolve(layers: layers)
        if let destinations = fileRoutes.destinations { configuration.destinations = destinations }
        if let routes = fileRoutes.routes { configuration.routes = routes }
        overrides(&configuration)
        do {
            try configuration.validate()
        } catch {
            // A route or destination of the file is named by its key there, not by its index.
            guard let filePath else { throw error }
            throw FileRoutes.naming(error, in: configuration, parsed: fileRoutes, source: "file \(filePath)")
        }
        return configuration
    }

    /// The file parsed as JSON or YAML; `nil` if it cannot be read.
    static func tree(file path: String) -> Any? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        if path.lowercased().hasSuffix(".json") { return try? JSONSerialization.jsonObject(with: data) }
        return try? Yams.load(yaml: String(decoding: data, as: UTF8.self))
    }

    /// Rejects a key under `otel.` or `spillway.` that is not a configuration key: a misspelt key
    /// would otherwise be ignored in silence. Other top-level keys (the application's own) are left
    /// alone; `spillway.destinations` and `spillway.routes` are checked by ``FileRoutes``.
    static func checkKeys(_ tree: Any?, path: String) throws(ConfigurationError) {
        var leaves: [String] = []
        func walk(_ node: Any?, _ prefix: String) {
            if let map = node as? [String: Any] {
                for (key, value) in map { walk(value, prefix.isEmpty ? key : prefix + "." + key) }
            } else if let map = node as? [AnyHashable: Any] {
                for (key, value) in map { walk(value, prefix.isEmpty ? "\(key)" : prefix + ".\(key)") }
            } else {
                leaves.append(prefix)
            }
        }
        walk(tree, "")
        let known = Set(ConfigurationKey.all.map(\.fileKey))
        let lists = ["spillway.destinations", "spillway.routes"]
        for leaf in leaves.sorted()
        where (leaf.hasPrefix("otel.") || leaf.hasPrefix("spillway.")) && !known.contains(leaf)
            && !lists.contains(where: { leaf == $0 || leaf.hasPrefix($0 + ".") })
        {
            let nearest = known.min { editDistance($0, leaf) < editDistance($1, leaf) } ?? ""
            throw ConfigurationError(
                key: leaf, value: "(any)", allowed: "a configuration key (did you mean \(nearest)?)", source: "file \(path)")
        }
    }

    /// The file's values for every known key, as strings in the environment variables' syntax.
    static func layer(_ snapshot: any ConfigSnapshot, name: String) -> ConfigurationLayer {
        var values: [String: String] = [:]
        for key in ConfigurationKey.all {
            let absolute = AbsoluteConfigKey(key.fileKey.split(separator: ".").map(String.init))
            // JSON numbers and booleans are both NSNumbers to the parser: ask for the key's own kind first.
            let isBoolean = key.defaultValue == "false" || key.defaultValue == "true"
            for type in isBoolean ? [ConfigType.string, .bool, .int] : [ConfigType.string, .int, .double, .bool] {
                guard let result = try? snapshot.value(forKey: absolute, type: type), let content = result.value?.content else { continue }
                switch content {
                case .string(let s): values[key.environmentVariable] = s
                case .int(let n): values[key.environmentVariable] = String(n)
                case .double(let d): values[key.environmentVariable] = String(d)
                case .bool(let b): values[key.environmentVariable] = String(b)
                default: continue
                }
                break
            }
        }
        return ConfigurationLayer(name: name, values: values, usesFileKeys: true)
    }
}
