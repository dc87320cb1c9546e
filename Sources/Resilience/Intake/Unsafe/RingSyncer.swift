internal import CRingBuffer
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The group commit of ``ExportRoute/Durability-swift.enum/machineCrash(window:timeout:)`` routes:
/// one thread (`spillway-sync`) makes the ring file's new committed records durable
/// (`crb_sync`: `msync` of their pages, then of the header page with the synced cursor) at most
/// once every `window`, and an emit on such a route waits until a sync covered its record.
/// One sync serves every record committed before it began.
///
/// Thread-safety: ``waitDurable(end:timeoutNanoseconds:)`` from any thread; one thread syncs.
final class RingSyncer: @unchecked Sendable {
    private let ring: Ring
    private let window: UInt64
    /// Everything before this position is on the disk (published after the header's msync).
    private let durable = Atomic<UInt64>(0)
    /// The furthest position an emit waits for.
    private let requested = Atomic<UInt64>(0)
    private let parker = ThreadParker()
    private let stopped = Atomic<Bool>(false)
    private let exited = Atomic<Bool>(false)
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Syncs done, and those that failed (an `msync` error: the waiting emits time out).
    let syncs = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    /// With tracing (tests): each sync's range, in order, and each wait's end position and outcome.
    private let trace: Mutex<(ranges: [(from: UInt64, to: UInt64)], waits: [(end: UInt64, synced: Bool)])>?

    init(ring: Ring, window: Duration, tracing: Bool = false) {
        self.ring = ring
        self.window = UInt64(clamping: window.nanoseconds)
        self.trace = tracing ? Mutex(([], [])) : nil
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        startThread(name: "spillway-sync") { [self] in run() }
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// The ranges synced so far and the waits (with tracing).
    var traced: (ranges: [(from: UInt64, to: UInt64)], waits: [(end: UInt64, synced: Bool)]) { trace?.withLock { $0 } ?? ([], []) }
    var durablePosition: UInt64 { durable.load(ordering: .acquiring) }

    /// Waits until the records before `end` are durable; `false` after `timeoutNanoseconds`.
    func waitDurable(end: UInt64, timeoutNanoseconds: UInt64) -> Bool {
        let synced = waitUntilSynced(end, timeoutNanoseconds)
        trace?.withLock { $0.waits.append((end, synced)) }
        return synced
    }

    private func waitUntilSynced(_ end: UInt64, _ timeoutNanoseconds: UInt64) -> Bool {
        // Acquire: pairs with the releasing store in run(), after the sync that covered `end`.
        if durable.load(ordering: .acquiring) >= end { return true }
        var seen = requested.load(ordering: .relaxed)
        while seen < end {
            let (exchanged, current) = requested.compareExchange(expected: seen, desired: end, ordering: .relaxed)
            if exchanged { break }
            seen = current
        }
        parker.unpark()
        let deadline = monotonicNanos() &+ timeoutNanoseconds
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while durable.load(ordering: .acquiring) < end {
            if stopped.load(ordering: .relaxed) || pthread_cond_timedwait(condition, mutex, &ts) == ETIMEDOUT {
                return durable.load(ordering: .acquiring) >= end
            }
        }
        return true
    }

    /// Stops the thread (after a last sync of what was asked for) and wakes every waiter.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        parker.unpark()
        while !exited.load(ordering: .acquiring) { usleep(100) }
    }

    private func run() {
        var lastStart: UInt64 = 0
        while true {
            let wanted = requested.load(ordering: .relaxed)
            if wanted <= durable.load(ordering: .relaxed) {
                if stopped.load(ordering: .relaxed) { break }
                parker.park(nanoseconds: 100_000_000)
                continue
            }
            // The group commit: at most one sync a window; the emits that arrive meanwhile share it.
            let now = monotonicNanos()
            if now < lastStart &+ window {
                var ts = timespec(tv_sec: 0, tv_nsec: Int(lastStart &+ window &- now))
                nanosleep(&ts, nil)
            }
            lastStart = monotonicNanos()
            let (rc, from, to) = ring.sync()
            syncs.add(1, ordering: .relaxed)
            if rc != 0 {
                failures.add(1, ordering: .relaxed)
                continue
            }
            trace?.withLock { $0.ranges.append((from, to)) }
            if to > durable.load(ordering: .relaxed) {
                // Release: pairs with the acquiring loads in waitDurable().
                durable.store(to, ordering: .releasing)
            }
            pthread_mutex_lock(mutex)
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
            // Nothing new committed behind a claim still being written: let it finish.
            if from == to { usleep(20) }
        }
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
        exited.store(true, ordering: .releasing)
    }
}
