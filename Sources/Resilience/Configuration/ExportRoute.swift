/// A class of records with its own error handler and overflow policy.
///
/// A record belongs to the first route (in configuration order) that matches its
/// instrumentation scope, its span name (spans) or its event name (log records); a metric (a
/// swift-metrics series, `SpillwayMetricsFactory`) to the first route that matches its name
/// (``metricNames``). Records no route matches take the default route, which uses the
/// pipeline's settings. Patterns are globs:
/// `*` matches any run of characters, `?` one character, everything else itself.
/// Records of different routes are never batched together, so a handler sees only its route's
/// records.
///
/// ```swift
/// // Audit records: failures go to their own handler; a full ring blocks the caller up to
/// // 250 ms instead of dropping.
/// configuration.routes = [
///     ExportRoute("audit", scopes: ["audit.*"], overflowPolicy: .block(upTo: .milliseconds(250)),
///                 errorHandler: ClosureExportErrorHandler { event in auditFallback.write(event) }),
/// ]
/// ```
public struct ExportRoute: Sendable {
    /// The route's name, in events (``ExportFailureEvent/route``), batches and stats. Unique, not empty.
    public var name: String
    /// Instrumentation scope patterns (`audit.*`).
    public var scopes: [String]
    /// Span name patterns (`payment.*`).
    public var spanNames: [String]
    /// Log event name patterns (`user.login*`).
    public var eventNames: [String]
    /// Metric name patterns (`billing.*`): the swift-metrics labels whose series this route's
    /// ``destinations`` get, each destination one request at a time, in collection order.
    public var metricNames: [String]
    /// What a producer does when the ring is full; `nil` for the pipeline's policy.
    public var overflowPolicy: OverflowPolicy?
    /// Receives this route's failures and drops instead of the pipeline's handler; `nil` for the pipeline's.
    public var errorHandler: (any ExportErrorHandler)?
    /// Which crash an emit on this route survives once it returned, with a spill directory (the
    /// ring file); `nil`: ``Durability-swift.enum/processCrash``. Without a spill directory
    /// nothing survives a crash of the process, and a `machineCrash` route is refused.
    public var durability: Durability?
    /// The destinations this route's records go to, each getting every record once (names of
    /// ``PipelineConfiguration/destinations``, or ``ExportDestination/pipelineExporter`` for the
    /// pipeline's own exporter). - Default value: empty, the pipeline's exporter alone.
    public var destinations: [String]

    /// A route named `name` for the records that match any of the patterns.
    public init(
        _ name: String, scopes: [String] = [], spanNames: [String] = [], eventNames: [String] = [], metricNames: [String] = [],
        overflowPolicy: OverflowPolicy? = nil, errorHandler: (any ExportErrorHandler)? = nil, destinations: [String] = [],
        durability: Durability? = nil
    ) {
        self.durability = durability
        self.metricNames = metricNames
        self.destinations = destinations
        self.name = name
        self.scopes = scopes
        self.spanNames = spanNames
        self.eventNames = eventNames
        self.overflowPolicy = overflowPolicy
        self.errorHandler = errorHandler
    }

    /// The destinations the records of `route` go to (the default route's, `nil`: the pipeline's
    /// exporter; so also a route that names none).
    static func destinations(of route: ExportRoute?) -> [String] {
        guard let route, !route.destinations.isEmpty else { return [ExportDestination.pipelineExporter] }
        return route.destinations
    }

    /// Which crash a record survives once its emit returned (the ring file of a spill directory).
    public enum Durability: Sendable, Hashable, CustomStringConvertible {
        /// The record is in the ring file's pages when the emit returns: it survives the process
        /// dying (SIGKILL, the OOM killer, a crash), not the machine. Costs nothing on the emit path.
        case processCrash
        /// The record is on the disk when the emit returns: one thread syncs the ring file's new
        /// records every `window` (a group commit: one `msync` serves every record that arrived
        /// meanwhile) and an emit waits for the sync that covers its record — about the window plus
        /// one sync. An emit not covered within `timeout` returns ``EmitResult/failed(_:)`` (the
        /// record stays queued and is exported, but may not survive a machine crash).
        case machineCrash(window: Duration = .milliseconds(2), timeout: Duration = .seconds(1))

        /// `process_crash`, or `machine_crash:2ms` (the window; the timeout when not 1 s: `machine_crash:2ms:500ms`).
        public var description: String {
            switch self {
            case .processCrash: "process_crash"
            case .machineCrash(let window, let timeout):
                "machine_crash:\(Self.text(window))" + (timeout == .seconds(1) ? "" : ":\(Self.text(timeout))")
            }
        }

        /// Reads `process_crash`, `machine_crash`, `machine_crash:<window>` or
        /// `machine_crash:<window>:<timeout>` (durations as `2ms`, `1s`); `nil` for anything else.
        public init?(parsing text: String) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            switch parts.first {
            case "process_crash" where parts.count == 1: self = .processCrash
            case "machine_crash" where parts.count <= 3:
                let durations = parts.dropFirst().compactMap(Self.duration)
                guard durations.count == parts.count - 1, durations.allSatisfy({ $0 > .zero }) else { return nil }
                self = .machineCrash(window: durations.first ?? .milliseconds(2), timeout: durations.dropFirst().first ?? .seconds(1))
            default: return nil
            }
        }

        /// `250us`, `2ms`, `1.5s`: a number and a unit.
        private static func duration(_ text: String) -> Duration? {
            for (unit, scale) in [("us", 1e-6), ("ms", 1e-3), ("s", 1.0)] where text.hasSuffix(unit) {
                guard let value = Double(text.dropLast(unit.count)), value.isFinite, value >= 0, value * scale <= 86_400 else { return nil }
                return .nanoseconds(Int64((value * scale * 1e9).rounded()))
            }
            return nil
        }

        private static func text(_ duration: Duration) -> String {
            let nanos = duration.nanoseconds
            if nanos % 1_000_000_000 == 0 { return "\(nanos / 1_000_000_000)s" }
            if nanos % 1_000_000 == 0 { return "\(nanos / 1_000_000)ms" }
            return "\(nanos / 1_000)us"
        }

        /// The spellings ``init(parsing:)`` takes, for error messages.
        public static let allowedSpellings =
            "process_crash, machine_crash, machine_crash:<window> or machine_crash:<window>:<timeout> (2ms, 1s)"
    }

    /// At most this many routes: the route index travels in the ring record's type.
    public static let maximumCount = 254
}

/// Matches `*` (any run) and `?` (one character) against `text`, by Unicode scalars.
func globMatches(_ pattern: String, _ text: String) -> Bool {
    let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
    var pi = 0, ti = 0, star = -1, mark = 0
    while ti < t.count {
        if pi < p.count && (p[pi] == "?" || (p[pi] != "*" && p[pi] == t[ti])) {
            pi += 1
            ti += 1
        } else if pi < p.count && p[pi] == "*" {
            star = pi
            mark = ti
            pi += 1
        } else if star >= 0 {
            pi = star + 1
            mark += 1
            ti = mark
        } else {
            return false
        }
    }
    while pi < p.count && p[pi] == "*" { pi += 1 }
    return pi == p.count
}

/// The configured routes, compiled: which route a scope, span name or event name goes to.
struct RouteTable: Sendable {
    let routes: [ExportRoute]
    /// Route indices (1-based) with span name / event name patterns, in order.
    private let spanNameRoutes: [Int]
    private let eventNameRoutes: [Int]

    init(_ routes: [ExportRoute]) {
        self.routes = routes
        spanNameRoutes = routes.indices.filter { !routes[$0].spanNames.isEmpty }.map { $0 + 1 }
        eventNameRoutes = routes.indices.filter { !routes[$0].eventNames.isEmpty }.map { $0 + 1 }
    }

    /// The route's name for route index `index` (0: the default route, `nil`).
    func name(_ index: Int) -> String? { index == 0 || index > routes.count ? nil : routes[index - 1].name }

    /// The first route whose scope patterns match, or 0.
    func route(scope: String) -> Int {
        for (i, route) in routes.enumerated() where route.scopes.contains(where: { globMatches($0, scope) }) { return i + 1 }
        return 0
    }

    var routesBySpanName: Bool { !spanNameRoutes.isEmpty }
    var routesByEventName: Bool { !eventNameRoutes.isEmpty }

    /// A name-matched route that comes before `scopeRoute` in order, else `scopeRoute`.
    func route(spanName: String, scopeRoute: Int) -> Int {
        for index in spanNameRoutes where scopeRoute == 0 || index < scopeRoute {
            if routes[index - 1].spanNames.contains(where: { globMatches($0, spanName) }) { return index }
        }
        return scopeRoute
    }

    /// The first route whose metric name patterns match, or 0.
    func route(metricName: String) -> Int {
        for (i, route) in routes.enumerated() where route.metricNames.contains(where: { globMatches($0, metricName) }) { return i + 1 }
        return 0
    }

    func route(eventName: String, scopeRoute: Int) -> Int {
        for index in eventNameRoutes where scopeRoute == 0 || index < scopeRoute {
            if routes[index - 1].eventNames.contains(where: { globMatches($0, eventName) }) { return index }
        }
        return scopeRoute
    }

    func validate(spill: SpillConfiguration?) throws(ConfigurationError) {
        if routes.count > ExportRoute.maximumCount {
            throw ConfigurationError(key: "routes", value: "\(routes.count) routes", allowed: "at most \(ExportRoute.maximumCount) routes")
        }
        var seen = Set<String>()
        for (i, route) in routes.enumerated() {
            if route.name.isEmpty || !seen.insert(route.name).inserted {
                throw ConfigurationError(key: "routes[\(i)].name", value: route.name, allowed: "a unique, non-empty name")
            }
            if route.scopes.isEmpty && route.spanNames.isEmpty && route.eventNames.isEmpty && route.metricNames.isEmpty {
                throw ConfigurationError(
                    key: "routes[\(i)]", value: route.name, allowed: "at least one scope, span name, event name or metric name pattern")
            }
            for pattern in route.scopes + route.spanNames + route.eventNames + route.metricNames where pattern.isEmpty {
                throw ConfigurationError(key: "routes[\(i)] patterns", value: "\"\"", allowed: "non-empty glob patterns (* and ?)")
            }
            if case .block(let t) = route.overflowPolicy, t < .zero {
                throw ConfigurationError(key: "routes[\(i)].overflowPolicy", value: "block(upTo: \(t))", allowed: "a duration >= 0")
            }
            if case .machineCrash(let window, let timeout) = route.durability {
                guard window > .zero && window <= .seconds(1) && timeout > .zero else {
                    throw ConfigurationError(
                        key: "routes[\(i)].durability", value: "\(route.durability!)",
                        allowed: "machine_crash with a window from 1 µs to 1 s and a timeout > 0")
                }
                guard spill != nil else {
                    throw ConfigurationError(
                        key: "routes[\(i)].durability", value: "\(route.durability!)",
                        allowed: "process_crash without a spill directory (machine_crash needs the ring file of spill.directory)")
                }
            }
        }
    }
}
