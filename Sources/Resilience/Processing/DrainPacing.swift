/// How long the drain thread parks after each pass over the ring: a pure state machine, fed the
/// number of records each pass found.
///
/// - **Idle** (a pass found nothing): 50 µs, doubling each idle pass up to 5 ms, whatever the ring.
/// - **Caught up** (fewer than ``caughtUp`` records): the thread is right behind the producers,
///   and reading the cache lines they are writing now would bounce them between cores on every
///   record (measured: 7 ns → 120–150 ns a record), so it lets them get ahead: 200 µs, doubling
///   while the passes after a park find fewer than half of ``caughtUp``, up to
///   ``longestCaughtUpPark``. A fixed 200 µs woke the thread 4,000 times a second at a service's
///   rate (28,000 records/s), ~30 µs of CPU each on a 2-vCPU VM: a tenth of a core for a few
///   records a wake-up. A pass right after a full one finds little at any rate and does not count
///   (doubling there cost 8 % of a producer's speed at 4 M spans/s).
/// - **Behind** (``caughtUp`` or more): no park. Found right after a park, that park was only too
///   long for the rate: it is halved. Found by a pass that did not follow a park, the thread is
///   behind the producers: the caught-up park starts again at 200 µs. (Starting again at 200 µs
///   after a park too made a steady rate whose doubled park crossed ``caughtUp`` climb from 200 µs
///   again and again: 1,650 wake-ups a second at 64,000 records a second, 890 when halved, in a
///   model of the loop with bursts every millisecond.)
///
/// The drain thread bounds each park by the nearest batch deadline, and a flush or a blocked
/// producer wakes it at once. Thread-safety: the drain thread's alone.
struct DrainPacing {
    /// A pass that found fewer records than this means the thread is right behind the producers.
    static let caughtUp = 256
    static let shortestCaughtUpPark: UInt64 = 200_000
    static let shortestIdlePark: UInt64 = 50_000
    static let longestIdlePark: UInt64 = 5_000_000

    /// The longest caught-up park: 5 ms, or less for a small ring — the time producers writing
    /// 1 GB/s (more than the emit path's ceiling) take to fill a quarter of it, so that a burst finds
    /// the thread awake before a ring that drops when full is full. The idle park is not capped so:
    /// that woke idle pipelines with 1 MiB rings 1,600 times a second, and a test process with
    /// dozens of them ran out of CPU.
    let longestCaughtUpPark: UInt64
    private(set) var idlePark = shortestIdlePark
    private(set) var caughtUpPark = shortestCaughtUpPark
    private var parkedLast = false

    /// For a ring of `ringCapacity` bytes.
    init(ringCapacity: Int) {
        longestCaughtUpPark = UInt64(min(5_000_000, max(200_000, ringCapacity / 4)))
    }

    /// After a pass that found `drained` records: how long to park (`nil`: go on at once).
    mutating func park(afterDraining drained: Int) -> UInt64? {
        if drained == 0 {
            defer { idlePark = min(idlePark * 2, Self.longestIdlePark) }
            return idlePark
        }
        idlePark = Self.shortestIdlePark
        guard drained < Self.caughtUp else {
            caughtUpPark = parkedLast ? max(caughtUpPark / 2, Self.shortestCaughtUpPark) : Self.shortestCaughtUpPark
            parkedLast = false
            return nil
        }
        if parkedLast && drained < Self.caughtUp / 2 { caughtUpPark = min(caughtUpPark * 2, longestCaughtUpPark) }
        parkedLast = true
        return caughtUpPark
    }
}
