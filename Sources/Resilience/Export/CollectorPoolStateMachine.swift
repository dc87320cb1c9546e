/// Which collector of a pool takes a request, as a pure state machine: one circuit breaker per
/// endpoint (``CircuitBreakerStateMachine``), time passed in, no clock and no lock (its owner
/// serializes calls).
///
/// - ``Mode/failover``: the endpoints in order; a request goes to the first whose breaker lets it
///   through. When the first one's breaker opens, traffic moves to the next healthy one; when its
///   cool-down has passed, the next request is its probe, and once a probe succeeds the traffic is
///   back on the first.
/// - ``Mode/balanceByTrace``: rendezvous (highest-random-weight) hashing of the trace id over the
///   endpoints whose breakers let the request through, so every record of a trace reaches the same
///   collector — what tail-sampling gateway pools need. When an endpoint fails only its share of
///   the traces moves (each to its next choice); when it returns, that share moves back. The
///   weights come from the endpoints' names, so every process configured with the same list maps
///   every trace the same way.
///
/// When no endpoint lets a request through, ``choose(trace:at:)`` says how long until one will:
/// the owner then treats the pool as down (the batch is retried or spilled).
package struct CollectorPoolStateMachine<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    /// How requests are spread over the endpoints.
    package enum Mode: String, Sendable, Hashable, CaseIterable {
        /// In order: the first healthy endpoint.
        case failover
        /// By trace id: the same trace to the same healthy endpoint.
        case balanceByTrace = "balance-by-trace"
    }

    /// Where a request goes.
    package enum Choice: Sendable, Hashable {
        /// To the endpoint at `index`; `probe`: it is that endpoint's one half-open probe.
        case send(to: Int, probe: Bool)
        /// Nowhere: every endpoint's breaker is open; one lets a probe through after this long.
        case noneUntil(Duration)
    }

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

    /// The endpoint for a request, its breaker told that a request starts (an open breaker whose
    /// cool-down has passed turns half-open and gets this request as its probe).
    /// - Parameter trace: The trace id's 128 bits folded to 64 (``balanceByTrace`` only; `failover` ignores it).
    package mutating func choose(trace: UInt64 = 0, at now: Instant) -> Choice {
        var soonest: Duration?
        for index in order(for: trace) {
            switch breakers[index].exportRequested(at: now) {
            case .export: return .send(to: index, probe: false)
            case .probe: return .send(to: index, probe: true)
            case .reject(let retryAfter): soonest = min(soonest ?? retryAfter, retryAfter)
            }
        }
        return .noneUntil(soonest ?? .zero)
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

    /// SplitMix64's finalizer: every bit of the input moves every bit of the weight.
    package static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
