#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Lets one thread sleep until woken or until a timeout: a mutex, a condition on
/// CLOCK_MONOTONIC, and a "signalled" flag so that a wake-up that comes first is not lost.
final class ThreadParker: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var signalled = false

    init() {
        pthread_mutex_init(mutex, nil)
        #if os(Linux)
            var attributes = pthread_condattr_t()
            pthread_condattr_init(&attributes)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
            pthread_cond_init(condition, &attributes)
            pthread_condattr_destroy(&attributes)
        #else
            pthread_cond_init(condition, nil)  // timed waits are relative there (pthread_cond_timedwait_relative_np)
        #endif
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Sleeps until ``unpark()`` or `nanoseconds` pass; returns at once if unparked since the last park.
    func park(nanoseconds: UInt64) {
        #if os(Linux)
            let deadline = monotonicNanos() &+ nanoseconds
            var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        #else
            var ts = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        #endif
        pthread_mutex_lock(mutex)
        while !signalled {
            #if os(Linux)
                if pthread_cond_timedwait(condition, mutex, &ts) == ETIMEDOUT { break }
            #else
                if pthread_cond_timedwait_relative_np(condition, mutex, &ts) == ETIMEDOUT { break }
            #endif
        }
        signalled = false
        pthread_mutex_unlock(mutex)
    }

    func unpark() {
        pthread_mutex_lock(mutex)
        signalled = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }
}

/// Starts a detached OS thread running `body` (the drain thread is not a Swift concurrency task:
/// it parks and blocks, which the cooperative pool must never do).
func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(ThreadBox(body, name)).toOpaque()
    #if os(Linux)
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { context in
                ThreadBox.run(context!)
                return nil
            }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(thread)
    #else
        var thread: pthread_t?
        let rc = pthread_create(
            &thread, nil,
            { context in
                ThreadBox.run(context)
                return nil
            }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(thread!)
    #endif
}

private final class ThreadBox {
    let body: @Sendable () -> Void
    let name: String
    init(_ body: @escaping @Sendable () -> Void, _ name: String) {
        self.body = body
        self.name = name
    }

    static func run(_ context: UnsafeMutableRawPointer) {
        let box = Unmanaged<ThreadBox>.fromOpaque(context).takeRetainedValue()
        // Name the thread for top -H, perf and gdb (15 bytes at most).
        #if os(Linux)
            // pthread_setname_np is not visible to Swift without _GNU_SOURCE; /proc/thread-self/comm is the same thing.
            let fd = open("/proc/thread-self/comm", O_WRONLY)
            if fd >= 0 {
                let name = Array(box.name.utf8.prefix(15))
                _ = name.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
            }
        #else
            _ = pthread_setname_np(box.name)
        #endif
        box.body()
    }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to `Int64`.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).overflow ? .max : product + attoseconds / 1_000_000_000
    }
}
