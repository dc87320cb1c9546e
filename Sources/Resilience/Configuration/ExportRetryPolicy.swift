/// Decides whether, and after how long, a failed export is attempted again.
///
/// Delays grow exponentially from ``initialDelay`` by ``multiplier``, are capped at
/// ``maximumDelay`` and randomized by ``jitter``. A `Retry-After` header from the collector is a
/// floor on the delay. Retrying stops after ``maximumAttempts`` attempts or once the next attempt
/// would start later than ``maximumElapsedTime`` after the first; the batch then goes to the
/// pipeline's failure destination, and is never silently lost.
///
/// The default budget is short — about 10 s — because a retry loop is the wrong place to ride
/// out an outage: while a batch is being retried it holds one of the few export slots, and a
/// long outage is what the failure destination (memory now, the spill store later) and the
/// circuit breaker are for. ``collector`` gives the OpenTelemetry Collector's values
/// (5 s / 30 s / ×1.5 / ±50 % / 300 s) for exporters with no store behind them.
///
/// When a pipeline with a spill store shuts down, no delay is waited out: a batch waiting for its
/// retry is sent once more at once, and what still fails is spilled (replayed by the next start).
/// Without a store, retries go on until the shutdown deadline.
///
/// A value; holds no attempt counter and is safe to share.
public struct ExportRetryPolicy: Sendable, Hashable {
    /// How delays are randomized, so that many clients do not retry in step.
    public enum Jitter: Sendable, Hashable {
        /// No randomization.
        case none
        /// A uniformly random delay from 0 to the computed one ("full jitter").
        case full
        /// The computed delay ± this fraction (0.5 = ±50 %, as the Collector does).
        case proportional(Double)
    }

    /// The delay before the first retry. - Default value: 1 s.
    public var initialDelay: Duration
    /// The cap on any computed delay (a `Retry-After` may exceed it). - Default value: 5 s.
    public var maximumDelay: Duration
    /// The growth factor between delays, >= 1. - Default value: 1.5.
    public var multiplier: Double
    /// - Default value: ±50 %.
    public var jitter: Jitter
    /// Attempts in all, the first included; `nil` for no limit. - Default value: `nil`.
    public var maximumAttempts: Int?
    /// The time after the first attempt past which no retry starts; `nil` for no limit.
    /// - Default value: 10 s.
    public var maximumElapsedTime: Duration?

    /// A policy; every parameter defaults to the value documented on its property.
    public init(
        initialDelay: Duration = .seconds(1), maximumDelay: Duration = .seconds(5), multiplier: Double = 1.5,
        jitter: Jitter = .proportional(0.5), maximumAttempts: Int? = nil, maximumElapsedTime: Duration? = .seconds(10)
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = multiplier
        self.jitter = jitter
        self.maximumAttempts = maximumAttempts
        self.maximumElapsedTime = maximumElapsedTime
    }

    /// The OpenTelemetry Collector's `retry_on_failure` defaults: 5 s, 30 s, ×1.5, ±50 %, 300 s.
    public static let collector = ExportRetryPolicy(
        initialDelay: .seconds(5), maximumDelay: .seconds(30), multiplier: 1.5, jitter: .proportional(0.5),
        maximumAttempts: nil, maximumElapsedTime: .seconds(300))

    /// Retries until the batch is exported or the pipeline shuts down.
    public static let unlimited = ExportRetryPolicy(maximumAttempts: nil, maximumElapsedTime: nil)

    /// The delay before retry number `retry` (1 for the first retry), jitter applied.
    public func delay(forRetry retry: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let base = Double(initialDelay.nanoseconds) * pow(multiplier, Double(max(retry - 1, 0)))
        let capped = min(base, Double(maximumDelay.nanoseconds))
        let jittered: Double
        switch jitter {
        case .none: jittered = capped
        case .full: jittered = Double.random(in: 0...capped, using: &generator)
        case .proportional(let fraction):
            let f = min(max(fraction, 0), 1)
            jittered = capped * Double.random(in: (1 - f)...(1 + f), using: &generator)
        }
        return .nanoseconds(Int64(jittered.rounded()))
    }

    func validate(key: String) throws(ConfigurationError) {
        if initialDelay < .zero {
            throw ConfigurationError(key: "\(key).initialDelay", value: "\(initialDelay)", allowed: "a duration >= 0")
        }
        if maximumDelay < initialDelay {
            throw ConfigurationError(
                key: "\(key).maximumDelay", value: "\(maximumDelay)", allowed: "a duration >= initialDelay (\(initialDelay))")
        }
        if !(multiplier >= 1) || !multiplier.isFinite {
            throw ConfigurationError(key: "\(key).multiplier", value: "\(multiplier)", allowed: "a finite number >= 1")
        }
        if case .proportional(let f) = jitter, !(0...1).contains(f) {
            throw ConfigurationError(key: "\(key).jitter", value: "proportional(\(f))", allowed: "none, full, or proportional(0...1)")
        }
        if let n = maximumAttempts, n < 1 {
            throw ConfigurationError(key: "\(key).maximumAttempts", value: "\(n)", allowed: "an integer >= 1, or nil for no limit")
        }
        if let t = maximumElapsedTime, t < .zero {
            throw ConfigurationError(key: "\(key).maximumElapsedTime", value: "\(t)", allowed: "a duration >= 0, or nil for no limit")
        }
    }
}

private func pow(_ x: Double, _ y: Double) -> Double {
    var result = 1.0
    var n = Int(y)
    var base = x
    while n > 0 {
        if n & 1 == 1 { result *= base }
        base *= base
        n >>= 1
    }
    return result
}
