import Resilience
import Testing

/// The pool's choices as a pure state machine, time passed in: failover order and return,
/// rendezvous hashing that moves only a failed endpoint's share and moves it back.
@Suite struct CollectorPoolTests {
    typealias Pool = CollectorPoolStateMachine<ContinuousClock.Instant>
    static let policy = CircuitBreakerPolicy(failureThreshold: 2, cooldown: .seconds(10), initialCooldown: .seconds(1))
    static let endpoints = ["http://gw-a:4318", "http://gw-b:4318", "http://gw-c:4318"]

    func fail(_ pool: inout Pool, _ index: Int, times: Int = 2, at now: ContinuousClock.Instant) {
        for _ in 0..<times { pool.failed(index, kind: .transport, at: now, reason: "refused") }
    }

    @Test func failoverMovesToTheNextHealthyEndpointAndBackAfterASuccessfulProbe() {
        var pool = Pool(endpoints: Self.endpoints, mode: .failover, policy: Self.policy)
        let t0 = ContinuousClock.now
        #expect(pool.choose(at: t0) == .send(to: 0, probe: false))
        fail(&pool, 0, at: t0)
        #expect(pool.state(0) == .open)
        #expect(pool.choose(at: t0) == .send(to: 1, probe: false), "the first is down: the next one")
        #expect(pool.choose(at: t0 + .milliseconds(500)) == .send(to: 1, probe: false), "still cooling down")
        // After the cool-down the first is due an (empty) probe; records stay on the next one.
        #expect(pool.probesDue(at: t0 + .seconds(1)) == [0])
        #expect(pool.state(0) == .halfOpen)
        #expect(pool.probesDue(at: t0 + .seconds(1)) == [], "one probe at a time")
        #expect(pool.choose(at: t0 + .seconds(1)) == .send(to: 1, probe: false), "while the probe is out")
        pool.succeeded(0)
        #expect(pool.choose(at: t0 + .seconds(2)) == .send(to: 0, probe: false), "back on the first")
    }

    @Test func aFailedProbeKeepsTrafficOnTheNextAndAllDownSaysWhenToTryAgain() {
        var pool = Pool(endpoints: Self.endpoints, mode: .failover, policy: Self.policy)
        let t0 = ContinuousClock.now
        fail(&pool, 0, at: t0)
        #expect(pool.probesDue(at: t0 + .seconds(1)) == [0])
        pool.failed(0, kind: .retryable, at: t0 + .seconds(1), reason: "HTTP 503")
        #expect(pool.state(0) == .open)
        #expect(pool.choose(at: t0 + .seconds(1)) == .send(to: 1, probe: false))
        fail(&pool, 1, at: t0 + .seconds(1))
        fail(&pool, 2, at: t0 + .seconds(1))
        guard case .noneUntil(let wait) = pool.choose(at: t0 + .seconds(1)) else {
            Issue.record("every endpoint is down: no choice")
            return
        }
        #expect(wait > .zero && wait <= .seconds(1), "\(wait)")
        #expect(pool.probesDue(at: t0 + .seconds(3)) == [], "all down: no empty probes, live requests probe")
        guard case .send(_, probe: true) = pool.choose(at: t0 + .seconds(3)) else {
            Issue.record("all down, cool-down over: a live request is the probe")
            return
        }
        #expect(pool.snapshot(at: t0 + .seconds(3)).state == .halfOpen)
    }

    /// The splitter's view (no breaker told) agrees with where requests go, and a request that
    /// failed on an endpoint is not sent there again.
    @Test func preferredAgreesWithChooseAndSkippingMovesOn() {
        var pool = Pool(endpoints: Self.endpoints, mode: .balanceByTrace, policy: Self.policy)
        let t0 = ContinuousClock.now
        fail(&pool, 2, at: t0)
        for trace in (0..<2_000).map({ Pool.mix(UInt64($0)) }) {
            let preferred = pool.preferred(for: trace)
            #expect(preferred != 2)
            #expect(pool.choose(trace: trace, at: t0) == .send(to: preferred, probe: false))
            #expect(pool.choose(trace: trace, preferring: 1 - preferred, at: t0) == .send(to: 1 - preferred, probe: false))
        }
        #expect(pool.choose(trace: 7, skipping: [0, 1], at: t0) == .noneUntil(.zero), "tried both closed ones")
        let snapshot = pool.snapshot(at: t0)
        #expect(snapshot.state == .closed && snapshot.trips == 1)
        pool.reset()
        #expect(pool.state(2) == .closed)
    }

    @Test func aMisconfiguredEndpointOpensAtOnceAndAnAnsweredRefusalDoesNot() {
        var pool = Pool(endpoints: Self.endpoints, mode: .failover, policy: Self.policy)
        let t0 = ContinuousClock.now
        pool.failed(0, kind: .permanent, at: t0, reason: "HTTP 400")
        pool.failed(0, kind: .permanent, at: t0, reason: "HTTP 400")
        #expect(pool.state(0) == .closed, "a 400 is an answer: the collector is up")
        pool.failed(0, kind: .misconfigured, at: t0, reason: "HTTP 401")
        #expect(pool.state(0) == .open)
        #expect(pool.choose(at: t0) == .send(to: 1, probe: false))
    }

    /// 30,000 trace ids over three endpoints: each gets about a third; when one fails only its
    /// traces move, and when it is back they map as before.
    @Test func balanceByTraceMovesOnlyTheFailedEndpointsShareAndMovesItBack() {
        var pool = Pool(endpoints: Self.endpoints, mode: .balanceByTrace, policy: Self.policy)
        let t0 = ContinuousClock.now
        let traces = (0..<30_000).map { Pool.mix(UInt64($0) &* 0x9E37_79B9) }
        func mapping(at now: ContinuousClock.Instant) -> [Int] {
            traces.map { trace in
                guard case .send(let index, _) = pool.choose(trace: trace, at: now) else { return -1 }
                return index
            }
        }
        let before = mapping(at: t0)
        for index in 0..<3 {
            let share = before.filter { $0 == index }.count
            #expect((8_000...12_000).contains(share), "endpoint \(index) has \(share) of 30,000 traces")
        }
        fail(&pool, 1, at: t0)
        let during = mapping(at: t0)
        let moved = zip(before, during).filter { $0 != $1 }
        #expect(moved.allSatisfy { $0.0 == 1 && $0.1 != 1 }, "only endpoint 1's traces move")
        #expect(moved.count == before.filter { $0 == 1 }.count, "all of them move")
        #expect(Set(moved.map(\.1)) == [0, 2], "spread over the other two")
        // Endpoint 1 is probed after its cool-down and answers: its share moves back.
        #expect(pool.probesDue(at: t0 + .seconds(1)) == [1])
        #expect(mapping(at: t0 + .seconds(1)) == during, "nothing moves while the probe is out")
        pool.succeeded(1)
        #expect(mapping(at: t0 + .seconds(2)) == before)
    }

    /// Two processes configured alike map every trace alike (the weights come from the names).
    @Test func twoPoolsWithTheSameEndpointsMapEveryTraceAlike() {
        var a = Pool(endpoints: Self.endpoints, mode: .balanceByTrace)
        var b = Pool(endpoints: Self.endpoints, mode: .balanceByTrace)
        let now = ContinuousClock.now
        for trace in (0..<1_000).map({ Pool.mix(UInt64($0)) }) {
            #expect(a.choose(trace: trace, at: now) == b.choose(trace: trace, at: now))
        }
        #expect(Pool(endpoints: Self.endpoints, mode: .failover).order(for: 42) == [0, 1, 2])
    }
}
