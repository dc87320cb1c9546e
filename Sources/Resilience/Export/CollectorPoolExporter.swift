import Synchronization

/// A collector pool's shared state as the exporter and the splitter use it: one
/// ``CollectorPoolStateMachine`` behind a lock, time read from the pipeline's clock.
package protocol CollectorRouting: AnyObject, Sendable {
    var mode: CollectorPoolConfiguration.Mode { get }
    var endpoints: [String] { get }
    func choose(trace: UInt64, preferring: Int?, skipping: [Int]) -> CollectorPoolChoice
    /// Each key's endpoint now (``CollectorPoolStateMachine/preferred(for:at:)``), under one lock.
    func preferred(for keys: [UInt64]) -> [Int]
    /// Open endpoints whose cool-down is over, turned half-open: to probe with an empty request.
    func probesDue() -> [Int]
    func succeeded(_ index: Int)
    func failed(_ index: Int, kind: ExportFailureKind, reason: String)
    func probeAbandoned(_ index: Int)
    /// The pool as one breaker (``CollectorPoolStateMachine/snapshot(at:)``).
    func snapshot() -> CircuitBreakerSnapshot
    func statuses() -> [CollectorStatus]
    func reset()
}

/// The state of one pipeline's collector pool. It outlives the exporters built on it: a
/// ``TelemetryPipeline/reconfigure(_:)`` that rotates TLS files builds new endpoint exporters
/// and keeps every endpoint's breaker. Thread-safety: safe from any thread; the lock is held for
/// a few instructions, never across an export.
final class CollectorPool<C: Clock>: CollectorRouting, @unchecked Sendable where C.Duration == Duration {
    let mode: CollectorPoolConfiguration.Mode
    let endpoints: [String]
    private let machine: Mutex<CollectorPoolStateMachine<C.Instant>>
    private let clock: C

    init(_ configuration: CollectorPoolConfiguration, policy: CircuitBreakerPolicy, clock: C) {
        self.mode = configuration.mode
        self.endpoints = configuration.endpoints
        self.machine = Mutex(CollectorPoolStateMachine(endpoints: configuration.endpoints, mode: configuration.mode, policy: policy))
        self.clock = clock
    }

    func choose(trace: UInt64, preferring: Int?, skipping: [Int]) -> CollectorPoolChoice {
        let now = clock.now
        return machine.withLock { $0.choose(trace: trace, preferring: preferring, skipping: skipping, at: now) }
    }

    func preferred(for keys: [UInt64]) -> [Int] {
        return machine.withLock { machine in keys.map { machine.preferred(for: $0) } }
    }

    func probesDue() -> [Int] {
        let now = clock.now
        return machine.withLock { $0.probesDue(at: now) }
    }

    func succeeded(_ index: Int) { machine.withLock { $0.succeeded(index) } }

    func failed(_ index: Int, kind: ExportFailureKind, reason: String) {
        let now = clock.now
        machine.withLock { $0.failed(index, kind: kind, at: now, reason: reason) }
    }

    func probeAbandoned(_ index: Int) {
        let now = clock.now
        machine.withLock { $0.probeAbandoned(index, at: now) }
    }

    func snapshot() -> CircuitBreakerSnapshot {
        let now = clock.now
        return machine.withLock { $0.snapshot(at: now) }
    }

    func statuses() -> [CollectorStatus] { machine.withLock { $0.statuses } }

    func reset() { machine.withLock { $0.reset() } }
}

/// Sends each request to one collector of a pool, as the pool's state machine chooses, and on
/// to the next one when that one does not answer.
///
/// The innermost stage where a single exporter would be; the retry stage is outside it, and the
/// pipeline's single breaker is left out (each endpoint has its own). A request that fails on an
/// endpoint for a retryable reason or a misconfiguration is sent at once to the next endpoint
/// whose breaker lets it through (in failover order, or the trace's rendezvous order), each
/// endpoint at most once per attempt. When every endpoint failed or is open, it throws the last
/// failure (the retry stage waits and tries again) or, once every breaker is open, a
/// ``ResilienceError/Code/circuitOpen`` error that ends the retry loop: the batch goes to the
/// spill store. A permanent refusal (400) is the data's fault and is thrown at once. Errors name
/// the endpoint that gave them. While another endpoint is up, an endpoint whose cool-down is
/// over is probed with an empty request (OTLP accepts one), not with records.
///
/// Thread-safety: safe to call concurrently, as its endpoint exporters are.
final class CollectorPoolExporter: TelemetryExporter {
    let name: String
    private let members: [any TelemetryExporter]
    private let pool: any CollectorRouting

    init(members: [any TelemetryExporter], pool: any CollectorRouting) {
        precondition(members.count == pool.endpoints.count, "one exporter per endpoint of the pool")
        self.members = members
        self.pool = pool
        self.name = "\(members[0].name)_pool"
    }

    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        for index in pool.probesDue() { probe(index, signal: batch.signal) }
        let key = pool.mode == .balanceByTrace ? TraceRouting.key(of: batch) : 0
        var tried: [Int] = []
        var lastError: (any Error)?
        while true {
            switch pool.choose(trace: key, preferring: batch.collector, skipping: tried) {
            case .noneUntil(let wait):
                throw unavailable(after: lastError, wait: wait, tried: tried)
            case .send(let index, let probe):
                do {
                    let response = try await members[index].export(batch)
                    pool.succeeded(index)
                    return response
                } catch {
                    let kind = ExportFailureKind.classify(error)
                    if kind == .shutdown || Task.isCancelled {
                        if probe { pool.probeAbandoned(index) }
                        throw error
                    }
                    pool.failed(index, kind: kind, reason: ExportFailureKind.describe(error))
                    let named = Self.naming(error, endpoint: pool.endpoints[index])
                    guard kind.isRetryable || kind == .misconfigured else { throw named }
                    tried.append(index)
                    lastError = named
                }
            }
        }
    }

    /// Probes a returning endpoint with an empty request of `signal` (OTLP accepts one), so that
    /// no record waits on an endpoint that may still be down: an answer closes its breaker and
    /// its share comes back; a failure keeps it open for a longer cool-down.
    private func probe(_ index: Int, signal: TelemetrySignal) {
        let (member, pool) = (members[index], self.pool)
        Task {
            do {
                _ = try await member.export(ExportBatch(signal: signal, body: [], recordCount: 0, sequence: 0))
                pool.succeeded(index)
            } catch {
                let kind = ExportFailureKind.classify(error)
                if kind == .shutdown { pool.probeAbandoned(index) } else { pool.failed(index, kind: kind, reason: "\(error)") }
            }
        }
    }

    /// What to throw when no endpoint is left for this attempt.
    private func unavailable(after lastError: (any Error)?, wait: Duration, tried: [Int]) -> any Error {
        let snapshot = pool.snapshot()
        guard snapshot.state == .open || lastError == nil else { return lastError! }
        let reopens = snapshot.reopensIn ?? wait
        let message =
            lastError == nil
            ? "every collector of the pool is unavailable (\(pool.endpoints.joined(separator: ", "))); a probe goes through in \(reopens)"
            : "the last open collector of the pool failed; a probe goes through in \(reopens)"
        return ResilienceError(code: .circuitOpen, message: message, retryAfter: reopens, cause: lastError)
    }

    /// `error` with the endpoint in its message, when it is the transport's.
    static func naming(_ error: any Error, endpoint: String) -> any Error {
        guard var error = error as? OTLPExportError else { return error }
        error.message = "collector \(endpoint): \(error.message)"
        return error
    }

    func shutdown() async {
        for member in members { await member.shutdown() }
    }
}
