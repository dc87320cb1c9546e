import Synchronization

/// Stops calling an exporter that keeps failing, so a dead collector costs no time.
///
/// Wraps a ``CircuitBreakerStateMachine``. While the breaker is open, ``export(_:)`` throws a
/// ``ResilienceError`` with code ``ResilienceError/Code/circuitOpen`` at once, without calling
/// the wrapped exporter; the error's `retryAfter` says when a probe will go through. The failure
/// that opens the breaker is thrown as that error too, with the failure as its `cause`. Place it
/// inside the ``RetryingExporter`` so every attempt is counted and an open breaker ends the
/// retry loop.
///
/// With `opensOnMisconfiguration`, a misconfiguration (``ExportFailureKind/misconfigured``:
/// 401, 403, 404, …) opens the breaker at once, and it stays open — one probe per cool-down —
/// until a probe succeeds or ``reset()`` (the configuration changed). A pipeline with a spill
/// store turns this on: batches then wait on disk instead of being refused one by one.
///
/// Thread-safety: safe to call concurrently; the state is behind a lock held for a few
/// instructions, never across the export.
package final class CircuitBreakingExporter<C: Clock>: TelemetryExporter, @unchecked Sendable where C.Duration == Duration {
    /// The stage behind the breaker.
    public let next: any TelemetryExporter
    private let clock: C
    private let machine: Mutex<CircuitBreakerStateMachine<C.Instant>>
    private let opensOnMisconfiguration: Bool

    public var name: String { next.name }

    /// Wraps `next`; reads time from `clock`.
    /// - Parameter opensOnMisconfiguration: Open at once on a misconfiguration. - Default value: `false`
    ///   (a misconfiguration counts as an answer, like every permanent error).
    public init(
        wrapping next: any TelemetryExporter, policy: CircuitBreakerPolicy = CircuitBreakerPolicy(), opensOnMisconfiguration: Bool = false,
        clock: C
    ) {
        self.next = next
        self.clock = clock
        self.machine = Mutex(CircuitBreakerStateMachine(policy: policy))
        self.opensOnMisconfiguration = opensOnMisconfiguration
    }

    /// The state, the number of trips, the time until a probe goes through (when open), and
    /// the misconfiguration that opened it, if one did.
    public var snapshot: CircuitBreakerSnapshot {
        let now = clock.now
        return machine.withLock { m in
            CircuitBreakerSnapshot(
                state: m.state, trips: m.trips, reopensIn: m.reopensAt.map { max(now.duration(to: $0), .zero) },
                misconfiguration: m.misconfiguration)
        }
    }

    /// Closes the breaker: the configuration changed, so the next request goes through.
    public func reset() {
        machine.withLock { $0.reset() }
    }

    public func export(_ batch: ExportBatch) async throws -> ExportResponse {
        let now = clock.now
        let action = machine.withLock { $0.exportRequested(at: now) }
        if case .reject(let retryAfter) = action {
            throw ResilienceError(
                code: .circuitOpen, message: "the circuit breaker for \(next.name) is open; a probe goes through in \(retryAfter)",
                retryAfter: retryAfter)
        }
        do {
            let response = try await next.export(batch)
            machine.withLock { $0.exportSucceeded() }
            return response
        } catch {
            let kind = ExportFailureKind.classify(error)
            let now = clock.now
            let opened = machine.withLock { m -> Duration? in
                if kind.isRetryable {
                    let before = m.trips
                    m.exportFailed(at: now)
                    return m.trips > before ? m.reopensAt.map { now.duration(to: $0) } : nil
                } else if kind == .shutdown {
                    m.probeAbandoned(at: now)
                } else if kind == .misconfigured && opensOnMisconfiguration {
                    m.exportMisconfigured(at: now, reason: ExportFailureKind.describe(error))
                } else {
                    m.exportSucceeded()  // the collector answered
                }
                return nil
            }
            // The attempt that opens the breaker ends the retry loop at once: no backoff is
            // waited out only to be refused.
            if let opened {
                throw ResilienceError(
                    code: .circuitOpen, message: "the circuit breaker for \(next.name) opened; a probe goes through in \(opened)",
                    retryAfter: opened, cause: error)
            }
            throw error
        }
    }

    public func shutdown() async { await next.shutdown() }
}

extension CircuitBreakingExporter where C == ContinuousClock {
    /// Wraps `next`; reads time from the continuous clock.
    package convenience init(
        wrapping next: any TelemetryExporter, policy: CircuitBreakerPolicy = CircuitBreakerPolicy(), opensOnMisconfiguration: Bool = false
    ) {
        self.init(wrapping: next, policy: policy, opensOnMisconfiguration: opensOnMisconfiguration, clock: ContinuousClock())
    }
}

/// A circuit breaker's state at one moment.
public struct CircuitBreakerSnapshot: Sendable, Hashable {
    /// Closed, open or half-open.
    public var state: CircuitBreakerState
    /// How often it opened since the start.
    public var trips: Int
    /// When open: the time until one probe goes through.
    public var reopensIn: Duration?
    /// When a misconfiguration opened it: the status and the collector's message.
    public var misconfiguration: String?
}
