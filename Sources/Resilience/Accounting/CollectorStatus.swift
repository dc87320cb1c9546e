/// One collector of a pool, as ``PipelineStats/collectors`` shows it.
public struct CollectorStatus: Sendable, Hashable, CustomStringConvertible {
    /// The collector's base URL, as configured.
    public var endpoint: String
    /// Its circuit breaker: closed while it answers; open after failures, when its share of the
    /// requests goes to the others; half-open while an empty probe request checks it.
    public var circuitBreakerState: CircuitBreakerState
    /// How often its breaker opened.
    public var circuitBreakerTrips: Int

    public init(endpoint: String, circuitBreakerState: CircuitBreakerState, circuitBreakerTrips: Int) {
        self.endpoint = endpoint
        self.circuitBreakerState = circuitBreakerState
        self.circuitBreakerTrips = circuitBreakerTrips
    }

    public var description: String { "\(endpoint) \(circuitBreakerState.rawValue) (\(circuitBreakerTrips) trips)" }
}
