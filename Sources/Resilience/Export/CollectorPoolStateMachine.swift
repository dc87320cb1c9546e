/// Which collector of a pool takes a request, as a pure state machine: one circuit breaker per
/// endpoint (``CircuitBreakerStateMachine``), time passed in, no clock and no lock (its owner
/// serializes calls).
///
/// - ``Mode/failover``: the endpoints in order; a request goes to the first whose breaker is
///   closed. When the first one's breaker opens, traffic moves to the next healthy one; once its
///   probe succeeds the traffic is back on the first.
/// - ``Mode/balanceByTrace``: rendezvous (highest-random-weight) hashing of the trace id over the
///   endpoints whose breakers are closed, so every record of a trace reaches the same
///   collector — what tail-sampling gateway pools need. When an endpoint fails only its share of
///   the traces moves (each to its next choice); when it returns, that share moves back. The
///   weights come from the endpoints' names, so every process configured with the same list maps
///   every trace the same way.
///
/// Probes: while some endpoint is closed, live requests never probe an open one (a probe that
/// failed would send its records elsewhere, and split their traces). Instead ``probesDue(at:)``
/// names the endpoints whose cool-down is over, now half-open, and the owner probes each with an
/// empty request. Only when no endpoint is closed does a live request become a probe.
///
/// When no endpoint lets a request through, ``choose(trace:preferring:skipping:at:)`` says how
/// long until one will: the owner then treats the pool as down (the batch is retried or spilled).
package struct CollectorPoolStateMachine<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    /// How requests are spread over the endpoints.
    package typealias Mode = CollectorPoolConfiguration.Mode

    /// Where a request goes.
    package typealias Choice = CollectorPoolChoice

    package let mode: Mode
    package let endpoints: [String]
    private var breakers: [CircuitBreakerStateMachine<Instant>]
    /// Each endpoint's rendezvous weight seed: FNV-1a of its name.
    private let seeds: [UInt64]

    /// - Parameters:
    ///   - endpoints: The collectors, in failover order. At least one.
    ///   - policy: Each endpoint's breaker.
    package init(endpoints: [String], mode: Mode, policy: CircuitBreakerPolicy = CircuitBreakerPolicy()) {
        precondition(!endpoints.isEmpty, "a collector pool needs an endpoint")
        self.mode = mode
        self.endpoints = endpoints
        self.breakers = endpoints.map { _ in CircuitBreakerStateMachine(policy: policy) }
        self.seeds = endpoints.map { name in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            return hash
        }
    }

    /// The endpoint for a request: the first closed one in the order (`preferring` first); when
    /// none is closed, the first whose breaker lets a probe through (that breaker is told a request
    /// starts and turns half-open).
    /// - Parameters:
    ///   - trace: The trace id's 128 bits folded to 64 (``balanceByTrace`` only; `failover` ignores it).
    ///   - preferring: An endpoint to try first (the one ``preferred(for:)`` gave when the
    ///     request was made); the rest follow in the trace's order.
    ///   - skipping: Endpoints this request already failed on.
    package mutating func choose(trace: UInt64 = 0, preferring: Int? = nil, skipping: [Int] = [], at now: Instant) -> Choice {
        var candidates = order(for: trace)
        if let preferring, let at = candidates.firstIndex(of: preferring) { candidates.insert(candidates.remove(at: at), at: 0) }
        candidates.removeAll { skipping.contains($0) }
        if let closed = candidates.first(where: { breakers[$0].state == .closed }) {
            _ = breakers[closed].exportRequested(at: now)
            return .send(to: closed, probe: false)
        }
        guard !breakers.contains(where: { $0.state == .closed }) else {
            // A closed endpoint exists but this request already failed on it: none is left for it.
            return .noneUntil(.zero)
        }
        var soonest: Duration?
        for index in candidates {
            switch breakers[index].exportRequested(at: now) {
            case .export: return .send(to: index, probe: false)
            case .probe: return .send(to: index, probe: true)
            case .reject(let retryAfter): soonest = min(soonest ?? retryAfter, retryAfter)
            }
        }
        return .noneUntil(soonest ?? .zero)
    }

    /// The endpoints to probe now with an empty request, each turned half-open: those whose
    /// cool-down is over, while another endpoint is closed (else live requests probe).
    package mutating func probesDue(at now: Instant) -> [Int] {
        guard breakers.contains(where: { $0.state == .closed }) else { return [] }
        var due: [Int] = []
        for index in breakers.indices where breakers[index].state == .open && (breakers[index].reopensAt.map { $0 <= now } ?? false) {
            if breakers[index].exportRequested(at: now) == .probe { due.append(index) }
        }
        return due
    }

    /// The endpoint a request for `trace` would go to now, without telling any breaker: the first
    /// closed one in the trace's order; the first in order when none is. No allocation: the
    /// splitter asks once per record.
    package func preferred(for trace: UInt64) -> Int {
        var best = -1
        var bestWeight: UInt64 = 0
        for index in endpoints.indices where breakers[index].state == .closed {
            let weight = mode == .failover ? UInt64(endpoints.count - index) : Self.mix(trace ^ seeds[index])
            if best < 0 || weight > bestWeight {
                best = index
                bestWeight = weight
            }
        }
        return best >= 0 ? best : order(for: trace)[0]
    }

    /// The pool as one breaker, for the pipeline's health, stats and replay: closed while any
    /// endpoint's is; half-open while none is closed and a probe is out; open when all are open
    /// (reopening with the soonest). Trips add up; a misconfiguration shows while every endpoint is open.
    package func snapshot(at now: Instant) -> CircuitBreakerSnapshot {
        let states = breakers.map(\.state)
        let state: CircuitBreakerState =
            states.contains(.closed) ? .closed : states.contains(.halfOpen) ? .halfOpen : .open
        let reopens = breakers.compactMap(\.reopensAt).min().map { max(now.duration(to: $0), .zero) }
        return CircuitBreakerSnapshot(
            state: state, trips: breakers.reduce(0) { $0 + $1.trips }, reopensIn: state == .open ? reopens : nil,
            misconfiguration: state == .open ? breakers.lazy.compactMap(\.misconfiguration).first : nil)
    }

    /// Each endpoint's breaker, in order.
    package var statuses: [CollectorStatus] {
        endpoints.indices.map {
            CollectorStatus(endpoint: endpoints[$0], circuitBreakerState: breakers[$0].state, circuitBreakerTrips: breakers[$0].trips)
        }
    }

    /// Closes every endpoint's breaker (the configuration changed).
    package mutating func reset() {
        for index in breakers.indices { breakers[index].reset() }
    }

    /// The endpoints in the order a request for `trace` tries them.
    package func order(for trace: UInt64) -> [Int] {
        switch mode {
        case .failover:
            return Array(endpoints.indices)
        case .balanceByTrace:
            let weights = seeds.map { Self.mix(trace ^ $0) }
            return endpoints.indices.sorted { weights[$0] != weights[$1] ? weights[$0] > weights[$1] : $0 < $1 }
        }
    }

    /// The endpoint answered (a success, or an answer that says nothing of its health).
    package mutating func succeeded(_ index: Int) { breakers[index].exportSucceeded() }

    /// The request to the endpoint failed: a retryable failure counts toward its breaker, a
    /// misconfiguration opens it at once, anything else was an answer and counts as a success.
    package mutating func failed(_ index: Int, kind: ExportFailureKind, at now: Instant, reason: String) {
        if kind == .misconfigured {
            breakers[index].exportMisconfigured(at: now, reason: reason)
        } else if kind.isRetryable {
            breakers[index].exportFailed(at: now)
        } else {
            breakers[index].exportSucceeded()
        }
    }

    /// The probe to the endpoint ended without an answer (cancelled): its next request probes again.
    package mutating func probeAbandoned(_ index: Int, at now: Instant) { breakers[index].probeAbandoned(at: now) }

    /// The endpoint's breaker state.
    package func state(_ index: Int) -> CircuitBreakerState { breakers[index].state }

    /// SplitMix64's finalizer (``collectorPoolMix(_:)``).
    package static func mix(_ value: UInt64) -> UInt64 { collectorPoolMix(value) }
}

/// Where a pool sends a request (``CollectorPoolStateMachine/choose(trace:preferring:skipping:at:)``).
package enum CollectorPoolChoice: Sendable, Hashable {
    /// To the endpoint at `index`; `probe`: it is that endpoint's one half-open probe.
    case send(to: Int, probe: Bool)
    /// Nowhere: every endpoint's breaker is open; one lets a probe through after this long.
    case noneUntil(Duration)
}

/// SplitMix64's finalizer: every bit of the input moves every bit of the weight.
@inline(__always)
package func collectorPoolMix(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
