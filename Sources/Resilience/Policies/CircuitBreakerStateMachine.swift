/// When to stop calling an exporter that keeps failing, and when to try it again.
///
/// - Default value: 5 consecutive failed attempts open the breaker; a probe after 30 s.
public struct CircuitBreakerPolicy: Sendable, Hashable {
    /// Consecutive failed attempts that open the breaker, >= 1. - Default value: 5.
    public var failureThreshold: Int
    /// How long the breaker stays open before one probe goes through. - Default value: 30 s.
    public var cooldown: Duration

    /// A policy; the parameters default to 5 failures and 30 s.
    public init(failureThreshold: Int = 5, cooldown: Duration = .seconds(30)) {
        self.failureThreshold = failureThreshold
        self.cooldown = cooldown
    }

    func validate(key: String) throws(ConfigurationError) {
        if failureThreshold < 1 {
            throw ConfigurationError(key: "\(key).failureThreshold", value: "\(failureThreshold)", allowed: "an integer >= 1")
        }
        if cooldown < .zero {
            throw ConfigurationError(key: "\(key).cooldown", value: "\(cooldown)", allowed: "a duration >= 0")
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

/// The circuit breaker as a pure state machine: events in, actions out, time passed in.
///
/// closed → open after `failureThreshold` consecutive failed attempts → half-open when an export
/// is requested after the cool-down, letting exactly one probe through → closed when the probe
/// succeeds, open again (a new cool-down) when it fails. Only failures that say the collector is
/// unreachable or overloaded (``ExportFailureKind/isRetryable``) count; a permanent error means
/// the collector answered, so it counts as a success.
///
/// A value with no clock and no lock: its owner (``CircuitBreakingExporter``) serializes calls.
public struct CircuitBreakerStateMachine<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    /// What the owner does with a requested export.
    public enum Action: Sendable, Hashable {
        /// Export.
        case export
        /// Export: this is the one probe of the half-open state.
        case probe
        /// Do not call the exporter; the breaker lets a request through again after this long at the earliest.
        case reject(retryAfter: Duration)
    }

    private enum InternalState: Sendable {
        case closed(failures: Int)
        case open(until: Instant)
        case halfOpen
    }

    /// The threshold and cool-down.
    public let policy: CircuitBreakerPolicy
    private var internalState: InternalState = .closed(failures: 0)
    /// How often the breaker opened.
    public private(set) var trips = 0

    /// A closed breaker with no failures.
    public init(policy: CircuitBreakerPolicy = CircuitBreakerPolicy()) {
        self.policy = policy
    }

    /// The current state.
    public var state: CircuitBreakerState {
        switch internalState {
        case .closed: return .closed
        case .open: return .open
        case .halfOpen: return .halfOpen
        }
    }

    /// When the breaker lets a probe through, if it is open.
    public var reopensAt: Instant? {
        if case .open(let until) = internalState { return until }
        return nil
    }

    /// An export is about to start.
    public mutating func exportRequested(at now: Instant) -> Action {
        switch internalState {
        case .closed:
            return .export
        case .open(let until) where now < until:
            return .reject(retryAfter: now.duration(to: until))
        case .open:
            internalState = .halfOpen
            return .probe
        case .halfOpen:
            // The probe's outcome decides; ask again in a moment.
            return .reject(retryAfter: min(policy.cooldown, .seconds(1)))
        }
    }

    /// The export (or probe) was answered by the collector.
    public mutating func exportSucceeded() {
        internalState = .closed(failures: 0)
    }

    /// The export (or probe) failed with a retryable error.
    public mutating func exportFailed(at now: Instant) {
        switch internalState {
        case .closed(let failures) where failures + 1 < policy.failureThreshold:
            internalState = .closed(failures: failures + 1)
        case .closed, .halfOpen:
            internalState = .open(until: now.advanced(by: policy.cooldown))
            trips += 1
        case .open:
            break  // a request that started before the breaker opened
        }
    }

    /// The probe ended without an answer (cancelled): the next request probes again.
    public mutating func probeAbandoned(at now: Instant) {
        if case .halfOpen = internalState { internalState = .open(until: now) }
    }
}
