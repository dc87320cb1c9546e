import Foundation
import Resilience

/// `spillway.destinations` and `spillway.routes` of a configuration file: the collectors that
/// routes send to, and the routes, each a map from its name to its settings.
///
/// ```yaml
/// spillway:
///   destinations:
///     compliance:
///       endpoint: https://audit.example:4318
///       headers: api-key=secret
///       certificate: /etc/ssl/audit-ca.pem
///   routes:
///     audit:
///       scopes: [audit.*]
///       destinations: [compliance, default]
/// ```
///
/// A destination's keys are the exporter's file keys without `otel.exporter.otlp.` (`endpoint`,
/// `protocol`, `headers`, `compression`, `timeout`, `certificate`, `client.certificate`,
/// `client.key`, `insecure`, and per signal `traces.endpoint`, `logs.headers`, …) or without
/// `spillway.exporter.otlp.` (`pool.endpoints`, `pool.mode`), with the same values. Its retry
/// policy (`retry`: `initial_delay`, `max_delay`, `max_elapsed_time` in milliseconds,
/// `multiplier`, `jitter` (`none`, `full` or a fraction), `max_attempts`; `unlimited` for no
/// limit) and circuit breaker (`breaker`: `failure_threshold`, `cooldown`, `initial_cooldown`)
/// start from their defaults; `none` turns either off. A route takes `scopes`,
/// `span_names`, `event_names`, `metric_names` and `destinations` (lists, or comma-separated strings),
/// `overflow` (`drop_newest` or `block:<milliseconds>`) and `order`; its error handler can only
/// come from code. A record takes the first route that matches it, and since neither JSON nor
/// YAML parsers keep the order of a map, routes are tried by `order` (an integer, default 0),
/// then by name. (swift-configuration reads no list of maps, so these are maps, not lists.)
/// Names in a file are written without dots, which would nest.
enum FileRoutes {
    /// What the file says; `nil` for a map it does not have.
    struct Parsed {
        var destinations: [ExportDestination]?
        var routes: [ExportRoute]?
    }

    /// The exporter's keys by their spelling in a destination (`endpoint`, `pool.mode`, …).
    static let exporterKeys: [String: ConfigurationKey] = {
        var keys: [String: ConfigurationKey] = [:]
        for configurationKey in ConfigurationKey.all {
            for prefix in ["otel.exporter.otlp.", "spillway.exporter.otlp."] where configurationKey.fileKey.hasPrefix(prefix) {
                keys[String(configurationKey.fileKey.dropFirst(prefix.count))] = configurationKey
            }
        }
        return keys
    }()

    static let routeKeys = ["scopes", "span_names", "event_names", "metric_names", "destinations", "overflow", "durability", "order"]

    static func parse(_ tree: Any?, source: String) throws(ConfigurationError) -> Parsed {
        var parsed = Parsed()
        let root = nested(tree)
        if let node = value(at: ["spillway", "destinations"], in: root) {
            var destinations: [ExportDestination] = []
            for (name, entry) in try entries(node, key: "spillway.destinations", source: source) {
                destinations.append(try destination(name, entry, key: "spillway.destinations.\(name)", source: source))
            }
            parsed.destinations = destinations
        }
        if let node = value(at: ["spillway", "routes"], in: root) {
            var routes: [(order: Int, route: ExportRoute)] = []
            for (name, entry) in try entries(node, key: "spillway.routes", source: source) {
                routes.append(try route(name, entry, key: "spillway.routes.\(name)", source: source))
            }
            parsed.routes = routes.sorted { ($0.order, $0.route.name) < ($1.order, $1.route.name) }.map(\.route)
        }
        return parsed
    }

    private static func destination(_ name: String, _ entry: [String: Any], key: String, source: String) throws(ConfigurationError)
        -> ExportDestination
    {
        let known = exporterKeys
        var values: [String: String] = [:]
        var leafOf: [String: String] = [:]  // environment variable → the entry's key, for errors
        var exporterEntry = entry
        let retry = try exporterEntry.removeValue(forKey: "retry").map { value throws(ConfigurationError) in
            try retryPolicy(value, key: "\(key).retry", source: source)
        }
        let breaker = try exporterEntry.removeValue(forKey: "breaker").map { value throws(ConfigurationError) in
            try breakerPolicy(value, key: "\(key).breaker", source: source)
        }
        for (leaf, value) in leaves(exporterEntry) {
            guard let configurationKey = known[leaf] else {
                let nearest = known.keys.min { editDistance($0, leaf) < editDistance($1, leaf) } ?? "endpoint"
                throw ConfigurationError(
                    key: "\(key).\(leaf)", value: "(any)", allowed: "an exporter key (did you mean \(nearest)?)", source: source)
            }
            values[configurationKey.environmentVariable] = string(value)
            leafOf[configurationKey.environmentVariable] = leaf
        }
        do {
            let resolved = try PipelineConfiguration.resolve(layers: [ConfigurationLayer(name: source, values: values)])
            var destination = ExportDestination(name, exporter: resolved.exporter)
            if let retry { destination.retry = retry }
            if let breaker { destination.circuitBreaker = breaker }
            return destination
        } catch {
            throw ConfigurationError(
                key: "\(key).\(leafOf[error.key] ?? error.key)", value: error.value, allowed: error.allowed, source: source)
        }
    }

    /// The spellings of ``ExportRetryPolicy``'s and ``CircuitBreakerPolicy``'s properties in a file.
    static let retryKeys = [
        "initialDelay": "initial_delay", "maximumDelay": "max_delay", "multiplier": "multiplier", "jitter": "jitter",
        "maximumAttempts": "max_attempts", "maximumElapsedTime": "max_elapsed_time"
    ]
    static let breakerKeys = ["failureThreshold": "failure_threshold", "cooldown": "cooldown", "initialCooldown": "initial_cooldown"]

    /// `none` (`nil`), or the entries of a policy's map as text; another value, or a key not among
    /// `keys`, is an error that lists them.
    private static func policyEntries(_ value: Any, key: String, keys: [String: String], source: String) throws(ConfigurationError)
        -> [(field: String, text: String)]?
    {
        if string(value) == "none" { return nil }
        let allowed = keys.values.sorted().joined(separator: ", ")
        guard let map = value as? [String: Any] else {
            throw ConfigurationError(key: key, value: string(value), allowed: "none, or a map of \(allowed)", source: source)
        }
        for field in map.keys where !keys.values.contains(field) {
            throw ConfigurationError(key: "\(key).\(field)", value: "(any)", allowed: "one of \(allowed)", source: source)
        }
        return map.map { (field: $0.key, text: string($0.value)) }
    }

    /// `retry: none`, or a map of the retry policy's settings over its defaults (times in milliseconds).
    private static func retryPolicy(_ value: Any, key: String, source: String) throws(ConfigurationError) -> ExportRetryPolicy? {
        guard let entries = try policyEntries(value, key: key, keys: retryKeys, source: source) else { return nil }
        var policy = ExportRetryPolicy()
        for (field, text) in entries {
            let unlimited = text == "unlimited"
            switch field {
            case "initial_delay": policy.initialDelay = try milliseconds(text, key: "\(key).\(field)", source: source)
            case "max_delay": policy.maximumDelay = try milliseconds(text, key: "\(key).\(field)", source: source)
            case "max_elapsed_time":
                policy.maximumElapsedTime = unlimited ? nil : try milliseconds(text, key: "\(key).\(field)", source: source)
            case "max_attempts":
                guard unlimited || Int(text) != nil else {
                    throw ConfigurationError(key: "\(key).\(field)", value: text, allowed: "an integer >= 1, or unlimited", source: source)
                }
                policy.maximumAttempts = Int(text)
            case "multiplier":
                guard let number = Double(text) else {
                    throw ConfigurationError(key: "\(key).\(field)", value: text, allowed: "a finite number >= 1", source: source)
                }
                policy.multiplier = number
            case "jitter":
                switch text {
                case "none": policy.jitter = .none
                case "full": policy.jitter = .full
                default:
                    guard let fraction = Double(text) else {
                        throw ConfigurationError(
                            key: "\(key).\(field)", value: text, allowed: "none, full, or a fraction 0 … 1 (0.5 is ±50 %)", source: source)
                    }
                    policy.jitter = .proportional(fraction)
                }
            default: break  // policyEntries let only the keys above through
            }
        }
        return policy
    }

    /// `breaker: none`, or a map of the circuit breaker's settings over its defaults (times in milliseconds).
    private static func breakerPolicy(_ value: Any, key: String, source: String) throws(ConfigurationError) -> CircuitBreakerPolicy? {
        guard let entries = try policyEntries(value, key: key, keys: breakerKeys, source: source) else { return nil }
        var policy = CircuitBreakerPolicy()
        for (field, text) in entries {
            switch field {
            case "failure_threshold":
                guard let number = Int(text) else {
                    throw ConfigurationError(key: "\(key).\(field)", value: text, allowed: "an integer >= 1", source: source)
                }
                policy.failureThreshold = number
            case "cooldown": policy.cooldown = try milliseconds(text, key: "\(key).\(field)", source: source)
            case "initial_cooldown": policy.initialCooldown = try milliseconds(text, key: "\(key).\(field)", source: source)
            default: break  // policyEntries let only the keys above through
            }
        }
        return policy
    }

    private static func milliseconds(_ text: String, key: String, source: String) throws(ConfigurationError) -> Duration {
        guard let number = Int64(text), number >= 0 else {
            throw ConfigurationError(key: key, value: text, allowed: "milliseconds, an integer >= 0", source: source)
        }
        return .milliseconds(number)
    }

    /// A ``PipelineConfiguration/validate()`` error about a route or destination the file defined
    /// (`routes[1].destinations`), named by its key in the file (`spillway.routes.audit.destinations`).
    static func naming(
        _ error: ConfigurationError, in configuration: PipelineConfiguration, parsed: Parsed, source: String
    ) -> ConfigurationError {
        let key = error.key
        guard let open = key.firstIndex(of: "["), let close = key.firstIndex(of: "]"), open < close,
            let index = Int(key[key.index(after: open)..<close])
        else { return error }
        let collection = String(key[..<open])
        var rest = String(key[key.index(after: close)...])
        if rest.hasPrefix(".") { rest.removeFirst() }
        let fileKey: String
        switch collection {
        case "routes":
            guard let routes = parsed.routes, routes.map(\.name) == configuration.routes.map(\.name), index < routes.count else {
                return error
            }
            let field = ["destinations": "destinations", "overflowPolicy": "overflow", "durability": "durability"][rest]
            fileKey = "spillway.routes.\(routes[index].name)" + (field.map { "." + $0 } ?? "")
        case "destinations":
            guard let destinations = parsed.destinations, destinations == configuration.destinations, index < destinations.count else {
                return error
            }
            let parts = rest.split(separator: ".", maxSplits: 1).map(String.init)
            var field = ""
            if parts.count == 2, parts[0] == "retry", let leaf = retryKeys[parts[1]] { field = ".retry." + leaf }
            if parts.count == 2, parts[0] == "circuitBreaker", let leaf = breakerKeys[parts[1]] { field = ".breaker." + leaf }
            fileKey = "spillway.destinations.\(destinations[index].name)" + field
        default:
            return error
        }
        return ConfigurationError(key: fileKey, value: error.value, allowed: error.allowed, source: source)
    }

    private static func route(_ name: String, _ entry: [String: Any], key: String, source: String) throws(ConfigurationError)
        -> (order: Int, route: ExportRoute)
    {
        var route = ExportRoute(name)
        var order = 0
        for (field, value) in entry {
            switch field {
            case "scopes": route.scopes = list(value)
            case "span_names": route.spanNames = list(value)
            case "event_names": route.eventNames = list(value)
            case "metric_names": route.metricNames = list(value)
            case "destinations": route.destinations = list(value)
            case "order":
                guard let number = Int(string(value)) else {
                    throw ConfigurationError(
                        key: "\(key).order", value: string(value), allowed: "an integer (routes are tried by order, then name)",
                        source: source)
                }
                order = number
            case "overflow":
                guard let policy = OverflowPolicy(parsing: string(value)) else {
                    throw ConfigurationError(
                        key: "\(key).overflow", value: string(value), allowed: OverflowPolicy.allowedSpellings, source: source)
                }
                route.overflowPolicy = policy
            case "durability":
                guard let durability = ExportRoute.Durability(parsing: string(value)) else {
                    throw ConfigurationError(
                        key: "\(key).durability", value: string(value), allowed: ExportRoute.Durability.allowedSpellings, source: source)
                }
                route.durability = durability
            default:
                throw ConfigurationError(
                    key: "\(key).\(field)", value: "(any)", allowed: "a route key: \(routeKeys.joined(separator: ", "))", source: source)
            }
        }
        return (order, route)
    }

    /// The entries of a map of names, by name, or an error that shows the expected shape.
    private static func entries(_ node: Any, key: String, source: String) throws(ConfigurationError) -> [(String, [String: Any])] {
        guard let map = node as? [String: Any] else {
            throw ConfigurationError(key: key, value: "\(node)", allowed: "a map from names to their settings (name: {…})", source: source)
        }
        var entries: [(String, [String: Any])] = []
        for (name, value) in map.sorted(by: { $0.key < $1.key }) {
            guard let settings = value as? [String: Any] else {
                throw ConfigurationError(key: "\(key).\(name)", value: "\(value)", allowed: "a map of settings", source: source)
            }
            entries.append((name, settings))
        }
        return entries
    }

    /// The tree with every dotted key split into nested maps (`exporter.otlp: …` is `exporter: {otlp: …}`).
    static func nested(_ node: Any?) -> Any? {
        if let list = node as? [Any] { return list.map { nested($0) ?? $0 } }
        guard let map = map(node) else { return node }
        var result: [String: Any] = [:]
        for (key, value) in map {
            let parts = key.split(separator: ".").map(String.init)
            guard let first = parts.first else { continue }
            var inner: Any = nested(value) ?? value
            for part in parts.dropFirst().reversed() { inner = [part: inner] }
            result[first] = merge(result[first], inner)
        }
        return result
    }

    private static func merge(_ a: Any?, _ b: Any) -> Any {
        guard let left = a as? [String: Any], let right = b as? [String: Any] else { return b }
        return left.merging(right) { merge($0, $1) }
    }

    /// The node at `path` of a nested tree.
    static func value(at path: [String], in node: Any?) -> Any? {
        guard let first = path.first else { return node }
        guard let map = node as? [String: Any], let child = map[first] else { return nil }
        return value(at: Array(path.dropFirst()), in: child)
    }

    private static func map(_ node: Any?) -> [String: Any]? {
        if let map = node as? [String: Any] { return map }
        guard let map = node as? [AnyHashable: Any] else { return nil }
        return Dictionary(map.map { ("\($0.key)", $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    /// Every value of a nested map, by its dotted path (`client: {key: …}` is `client.key`).
    private static func leaves(_ map: [String: Any], prefix: String = "") -> [(String, Any)] {
        map.flatMap { key, value -> [(String, Any)] in
            let path = prefix.isEmpty ? key : prefix + "." + key
            if let inner = value as? [String: Any] { return leaves(inner, prefix: path) }
            return [(path, value)]
        }
    }

    /// A scalar in the environment variables' syntax; a list joined with commas.
    private static func string(_ value: Any) -> String {
        if let list = value as? [Any] { return list.map(string).joined(separator: ",") }
        if type(of: value) != Bool.self, !(value is String), let number = value as? NSNumber {
            // JSON's true and false arrive as NSNumbers too: their type code tells them from 1 and 0.
            let code = String(cString: number.objCType)
            if code == "c" || code == "B" { return number.boolValue ? "true" : "false" }
            return number.stringValue
        }
        return "\(value)"
    }

    private static func list(_ value: Any) -> [String] {
        if let list = value as? [Any] { return list.map(string) }
        return string(value).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
