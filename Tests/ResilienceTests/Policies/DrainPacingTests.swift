import Testing

@testable import Resilience

@Suite struct DrainPacingTests {
    /// At a service's rate each pass finds a few records: the park doubles to its longest, so the
    /// thread wakes ~200 times a second instead of 4,000.
    @Test func aTrickleDoublesTheCaughtUpParkToItsLongest() {
        var pacing = DrainPacing(ringCapacity: 16 << 20)
        var parks: [UInt64?] = []
        for _ in 0..<8 { parks.append(pacing.park(afterDraining: 5)) }
        #expect(parks == [200_000, 400_000, 800_000, 1_600_000, 3_200_000, 4_194_304, 4_194_304, 4_194_304])
    }

    /// Behind the producers (full passes one after another): no park, and the next caught-up pass
    /// starts again at 200 µs; the pass right after a full one does not double it (at 4 M spans/s
    /// that cost 8 % of a producer's speed).
    @Test func aFullPassParksNotAndThePassAfterItDoesNotDouble() {
        var pacing = DrainPacing(ringCapacity: 16 << 20)
        for _ in 0..<5 { _ = pacing.park(afterDraining: 3) }
        #expect(pacing.park(afterDraining: 5_000) == nil)
        #expect(pacing.park(afterDraining: 5_000) == nil)
        #expect(pacing.park(afterDraining: 3) == 200_000)
        #expect(pacing.park(afterDraining: 200) == 200_000, "half of caughtUp or more keeps the length")
        #expect(pacing.park(afterDraining: 3) == 400_000)
    }

    /// A full pass right after a park means the park was too long for the rate, not that the thread
    /// is behind: it halves the park instead of starting again at 200 µs. A steady rate then keeps
    /// a park near the one that finds half of caughtUp to caughtUp records, instead of climbing from
    /// 200 µs again and again.
    @Test func aFullPassRightAfterAParkHalvesItAndASteadyRateSettles() {
        var pacing = DrainPacing(ringCapacity: 16 << 20)
        for _ in 0..<5 { _ = pacing.park(afterDraining: 3) }  // parks 200 µs … 3.2 ms
        #expect(pacing.caughtUpPark == 3_200_000)
        #expect(pacing.park(afterDraining: 300) == nil, "a full pass: drain on at once")
        #expect(pacing.caughtUpPark == 1_600_000, "halved, not back to 200 µs")
        #expect(pacing.park(afterDraining: 3) == 1_600_000, "the pass after a full one does not double")

        // 64 records at every whole millisecond (a service's bursts), each pass finding the bursts
        // since the pass before it and costing 30 µs. Starting again at 200 µs after every full
        // pass made 3,308 passes in these 2 s; halving makes 1,776.
        var settled = DrainPacing(ringCapacity: 16 << 20)
        var now: UInt64 = 0
        var read: UInt64 = 0
        var wakeUps = 0
        while now < 2_000_000_000 {
            let arrived = (now / 1_000_000 + 1) * 64
            let park = settled.park(afterDraining: Int(arrived - read))
            read = arrived
            now += (park ?? 5_000) + 30_000
            wakeUps += 1
        }
        #expect(wakeUps < 2_500, "\(wakeUps) passes in 2 s")
    }

    /// Idle passes climb from 50 µs to 5 ms whatever the ring (capping that by a small ring woke
    /// idle pipelines 1,600 times a second); a small ring caps only the caught-up park.
    @Test func aSmallRingCapsTheCaughtUpParkButNotTheIdleOne() {
        var pacing = DrainPacing(ringCapacity: 1 << 20)
        var idle: [UInt64?] = []
        for _ in 0..<9 { idle.append(pacing.park(afterDraining: 0)) }
        #expect(idle.first == 50_000 && idle.last == 5_000_000)
        var caughtUp: UInt64? = 0
        for _ in 0..<6 { caughtUp = pacing.park(afterDraining: 1) }
        #expect(caughtUp == 262_144)
        #expect(pacing.park(afterDraining: 0) == 50_000, "records since the last idle pass: the idle park starts again")
    }
}
