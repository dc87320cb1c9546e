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
