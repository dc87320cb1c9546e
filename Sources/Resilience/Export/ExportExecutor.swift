import Synchronization

/// Runs the pipeline's export tasks on its own OS thread instead of Swift concurrency's
/// cooperative pool.
///
/// Emitting threads may block (the `.block(upTo:)` overflow policy, the simple processor), and
/// they are often cooperative threads themselves. If exports needed the cooperative pool, a
/// few blocked emitters would starve the exports that would unblock them: with 2 cores the pool
/// has 2 threads, and the end-to-end benchmark deadlocked exactly so. On this executor the
/// export glue (gzip, response parsing) always has a thread; the I/O itself is on swift-nio's
/// event loops.
final class ExportExecutor: TaskExecutor, @unchecked Sendable {
    private let queue = Mutex<[UnownedJob]>([])
    private let parker = ThreadParker()
    private let stopped = Atomic<Bool>(false)
    /// Whether a thread is serving the queue; after ``stop()`` the thread ends when the queue is
    /// empty, and a job that arrives later (an export finishing after shutdown) starts a new one.
    private let running = Atomic<Bool>(false)
    private let name: String

    init(name: String) {
        self.name = name
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.withLock { $0.append(job) }
        if !running.load(ordering: .acquiring)
            && running.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        {
            startThread(name: name) { [self] in run() }
        } else {
            parker.unpark()
        }
    }

    /// Lets the thread end once its queue is empty.
    func stop() {
        stopped.store(true, ordering: .releasing)
        parker.unpark()
    }

    private func run() {
        var batch: [UnownedJob] = []
        while true {
            queue.withLock { swap(&$0, &batch) }
            if batch.isEmpty {
                if stopped.load(ordering: .acquiring) {
                    running.store(false, ordering: .releasing)
                    // A job enqueued between the empty check and the store above saw `running`
                    // true and did not start a thread: take it over, unless another thread did.
                    let pending = queue.withLock { !$0.isEmpty }
                    if pending && running.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged {
                        continue
                    }
                    return
                }
                parker.park(nanoseconds: 100_000_000)
                continue
            }
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
