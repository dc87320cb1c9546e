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

/// The circuit breaker as a pure state machine: events in, actions out, time passed in.
///
/// closed → open after `failureThreshold` consecutive failed attempts → half-open when an export
/// is requested after the cool-down, letting exactly one probe through → closed when the probe
/// succeeds, open again when it fails (the next cool-down grows with the outage, see
/// ``CircuitBreakerPolicy``). Only failures that say the collector is unreachable or overloaded
/// (``ExportFailureKind/isRetryable``) count; a permanent error means the collector answered,
/// so it counts as a success — except a misconfiguration (``exportMisconfigured(at:reason:)``),
/// which opens the breaker at once: sending more requests with the same configuration would
/// only be refused again. ``reset()`` (the configuration changed) closes it.
///
/// A value with no clock and no lock: its owner (``CircuitBreakingExporter``) serializes calls.
package struct CircuitBreakerStateMachine<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
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
        /// Open since `since` (the start of this outage), until `until`.
        case open(until: Instant, since: Instant)
        case halfOpen(since: Instant)
    }

    /// The threshold and cool-downs.
    public let policy: CircuitBreakerPolicy
    private var internalState: InternalState = .closed(failures: 0)
    /// How often the breaker opened.
    public private(set) var trips = 0
    /// Why the breaker is open when the collector refused the client's configuration (the
    /// status and the collector's message); `nil` otherwise.
    public private(set) var misconfiguration: String?

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
        if case .open(let until, _) = internalState { return until }
        return nil
    }

    /// An export is about to start.
    public mutating func exportRequested(at now: Instant) -> Action {
        switch internalState {
        case .closed:
            return .export
        case .open(let until, _) where now < until:
            return .reject(retryAfter: now.duration(to: until))
        case .open(_, let since):
            internalState = .halfOpen(since: since)
            return .probe
        case .halfOpen:
            // The probe's outcome decides; ask again in a moment.
            return .reject(retryAfter: min(policy.cooldown, .seconds(1)))
        }
    }

    /// The export (or probe) was answered by the collector.
    public mutating func exportSucceeded() {
        internalState = .closed(failures: 0)
        misconfiguration = nil
    }

    /// The export (or probe) failed with a retryable error.
    public mutating func exportFailed(at now: Instant) {
        switch internalState {
        case .closed(let failures) where failures + 1 < policy.failureThreshold:
            internalState = .closed(failures: failures + 1)
        case .closed:
            open(at: now, since: now)
        case .halfOpen(let since):
            open(at: now, since: since)
        case .open:
            break  // a request that started before the breaker opened
        }
    }

    /// The collector refused the request because of the client's configuration
    /// (``ExportFailureKind/misconfigured``): the breaker opens at once, whatever the threshold.
    public mutating func exportMisconfigured(at now: Instant, reason: String) {
        misconfiguration = reason
        switch internalState {
        case .closed:
            open(at: now, since: now)
        case .halfOpen(let since):
            open(at: now, since: since)
        case .open:
            break
        }
    }

    /// The probe ended without an answer (cancelled): the next request probes again.
    public mutating func probeAbandoned(at now: Instant) {
        if case .halfOpen(let since) = internalState { internalState = .open(until: now, since: since) }
    }

    /// The configuration changed: the next request goes through (closed, failures forgotten).
    public mutating func reset() {
        internalState = .closed(failures: 0)
        misconfiguration = nil
    }

    private mutating func open(at now: Instant, since: Instant) {
        trips += 1  // from closed, or a failed probe
        internalState = .open(until: now.advanced(by: policy.wait(openFor: since.duration(to: now))), since: since)
    }
}
