/// How many export requests of one signal may be in flight: an adaptive window, as TCP's
/// congestion window, over request latency and failures.
///
/// A collector 200 ms away answers at most `window / 0.2 s` requests a second, so a fixed two
/// requests in flight cap a pipeline at 5 k spans/s whatever the collector could take. The
/// window opens while it is what limits the pipeline and latency stays flat, and closes when the
/// collector shows strain:
///
/// - **Slow start**: from `initial`, one more request per success (the window doubles each
///   round trip) until the first sign of strain.
/// - **Growth**: then one more request per round trip (per `window` successes).
/// - **Only when limited**: a success grows the window only if the last batch had to wait for a
///   free slot. A pipeline with slots to spare gains nothing from more, and a window that grew
///   while idle would let a burst through at a rate never tried.
/// - **Rising latency**: a success slower than twice the base latency (the least seen over the
///   last two epochs of 64 samples) plus 10 ms means requests queue at the collector: the window
///   shrinks by a quarter.
/// - **Failure**: a timeout, a transport failure, 429, 502, 503 or 504 (what the
///   retry stage retries) halves the window. A request the
///   collector refused for its content (400) or the configuration (401, 404, …) says nothing of
///   its capacity and leaves the window as it is.
/// - At most one decrease per base latency (a round trip): the other answers of the same round
///   carry the same news.
/// - **Recovery**: the decreases of one bad spell (until the next success) leave the slow-start
///   threshold at half the window the spell began with, so after an outage that took the window
///   down to 1 it doubles back to that half, as TCP does after a timeout, instead of growing by
///   one request per round trip from 1.
///
/// A pure state machine: the caller passes the time (monotonic, since any origin). Not thread-safe.
package struct ExportWindowStateMachine: Sendable {
    /// The window never opens wider than this (``BatchConfiguration/maxConcurrentExports``).
    package private(set) var maximum: Int
    /// Requests allowed in flight now (``limit``).
    package private(set) var window: Int
    /// Successes counted towards the next request of linear growth (one per `window` successes).
    private var growthCredit = 0
    private var slowStartThreshold = Int.max
    private var epochMinimum: Duration?
    private var previousEpochMinimum: Duration?
    private var epochSamples = 0
    private var lastDecrease: Duration?
    /// The window when the current bad spell began (its first decrease); `nil` after a success.
    private var spellStart: Int?
    /// The largest ``limit`` so far.
    package private(set) var peak: Int

    static let epochLength = 64
    static let latencySlack: Duration = .milliseconds(10)

    /// A window of `initial` requests (clamped to `1...maximum`), adaptive up to `maximum`.
    package init(initial: Int, maximum: Int) {
        self.maximum = max(1, maximum)
        self.window = min(max(1, initial), self.maximum)
        self.peak = window
    }

    /// Requests allowed in flight now.
    package var limit: Int { window }

    /// The least latency of this epoch and the one before: what an unloaded collector answers in.
    package var baseLatency: Duration? {
        switch (epochMinimum, previousEpochMinimum) {
        case (let a?, let b?): min(a, b)
        case (let a?, nil): a
        case (nil, let b?): b
        case (nil, nil): nil
        }
    }

    /// A request answered with success after `latency` (connection set-up excluded).
    /// - Parameter limited: Whether the last batch had to wait for a free slot.
    package mutating func succeeded(latency: Duration, limited: Bool, now: Duration) {
        spellStart = nil
        let base = baseLatency ?? latency
        record(latency)
        if latency > base * 2 + Self.latencySlack {
            decrease(to: 0.75, now: now, base: base)
            return
        }
        guard limited, window < maximum else { return }
        if window < slowStartThreshold {
            window += 1
        } else {
            growthCredit += 1
            guard growthCredit >= window else { return }
            growthCredit = 0
            window += 1
        }
        peak = max(peak, window)
    }

    /// A request that failed. `congestion`: a failure the retry stage retries (timeout, transport, 429, 502–504).
    package mutating func failed(congestion: Bool, now: Duration) {
        guard congestion else { return }
        decrease(to: 0.5, now: now, base: baseLatency ?? .zero)
    }

    /// A new ceiling (live reconfiguration); the window shrinks to it if it was wider.
    package mutating func setMaximum(_ value: Int) {
        maximum = max(1, value)
        window = min(window, maximum)
    }

    private mutating func decrease(to factor: Double, now: Duration, base: Duration) {
        if let lastDecrease, now - lastDecrease < max(base, Self.latencySlack) { return }
        lastDecrease = now
        let start = spellStart ?? window
        spellStart = start
        window = max(1, Int(Double(window) * factor))
        slowStartThreshold = max(window, start / 2)
        growthCredit = 0
    }

    private mutating func record(_ latency: Duration) {
        epochMinimum = min(epochMinimum ?? latency, latency)
        epochSamples += 1
        if epochSamples >= Self.epochLength {
            previousEpochMinimum = epochMinimum
            epochMinimum = nil
            epochSamples = 0
        }
    }
}
