/// When to stop calling an exporter that keeps failing, and when to try it again.
///
/// The breaker opens after `failureThreshold` consecutive failed attempts. The first probe goes
/// through after `initialCooldown`; while probes keep failing, the wait before the next one is a
/// fifth of how long the breaker has been open, from `initialCooldown` up to `cooldown`. So
/// delivery resumes within about a second of a short outage's end, and a collector that stays
/// down for an hour is probed twice a minute.
///
/// - Default value: 5 consecutive failed attempts open the breaker; probes after 1 s, then every
///   fifth of the outage so far, at most every 30 s.
public struct CircuitBreakerPolicy: Sendable, Hashable {
    /// Consecutive failed attempts that open the breaker, >= 1. - Default value: 5.
    public var failureThreshold: Int
    /// The longest wait between probes while the collector stays down. - Default value: 30 s.
    public var cooldown: Duration
    /// The wait before the first probe after the breaker opened (at most `cooldown`). - Default value: 1 s.
    public var initialCooldown: Duration

    /// A policy; the parameters default to 5 failures, 1 s and 30 s.
    public init(failureThreshold: Int = 5, cooldown: Duration = .seconds(30), initialCooldown: Duration = .seconds(1)) {
        self.failureThreshold = failureThreshold
        self.cooldown = cooldown
        self.initialCooldown = initialCooldown
    }

    /// The wait before the next probe when the breaker has been open for `openFor`.
    func wait(openFor: Duration) -> Duration {
        let first = min(initialCooldown, cooldown)
        return min(cooldown, max(first, openFor / 5))
    }

    func validate(key: String) throws(ConfigurationError) {
        if failureThreshold < 1 {
            throw ConfigurationError(key: "\(key).failureThreshold", value: "\(failureThreshold)", allowed: "an integer >= 1")
        }
        if cooldown < .zero {
            throw ConfigurationError(key: "\(key).cooldown", value: "\(cooldown)", allowed: "a duration >= 0")
        }
        if initialCooldown < .zero {
            throw ConfigurationError(key: "\(key).initialCooldown", value: "\(initialCooldown)", allowed: "a duration >= 0")
        }
    }
}

/// The circuit breaker's states, without their bookkeeping.
public enum CircuitBreakerState: String, Sendable, Hashable {
    /// Exports go through; failures are counted.
    case closed
    /// Exports are refused until the cool-down ends.
    case open
    /// One probe is under way; everything else is refused until it ends.
    case halfOpen = "half_open"
}
