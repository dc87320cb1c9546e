import Synchronization

/// The export tasks of one pipeline: each batch goes through the chain on a task of the
/// pipeline's export executor, and shutdown can cancel them all and wait for them.
///
/// The chain is the whole chain, error handling outermost, so every outcome is booked by the
/// ledger before a task ends. Thread-safety: safe from any thread.
final class ExportTasks: Sendable {
    /// The chain every batch goes through (``ErrorHandlingExporter`` outermost).
    let chain: any TelemetryExporter
    /// Where export tasks (and the replayer's) run: never the cooperative pool (see ``ExportExecutor``).
    let executor = ExportExecutor(name: "spillway-export")
    /// The tasks not yet ended, by id; `nil` while one is being created. `cancelledThrough`: the
    /// last id when ``cancelAll()`` last ran (a task with that id or a lower one is cancelled).
    private let tasks = Mutex<(next: Int, cancelledThrough: Int, running: [Int: Task<Void, Never>?])>((0, 0, [:]))

    init(chain: any TelemetryExporter) {
        self.chain = chain
    }

    /// Sends one batch through the chain, whose error-handling stage books every outcome.
    func export(_ batch: ExportBatch) async -> Result<ExportResponse, any Error> {
        do {
            return .success(try await chain.export(batch))
        } catch {
            return .failure(error)
        }
    }

    /// Runs `body` as an export task on the executor; ``cancelAll()`` cancels it.
    ///
    /// The body, and with it the batch it holds and the batch's ring hold, is released before the
    /// task unregisters: shutdown reads ``running`` `== 0` as "no export holds a batch", and moves
    /// any batch still held to the ring file for the next start — a batch spilled a moment before,
    /// whose last copy a finished task's closure still held, was sent twice that way.
    ///
    /// The task is made outside the lock: made under it, it often ran its (short) body on the export
    /// thread and then spun for the lock that the drain thread still held while it made the task —
    /// 10 % of a drain-bound run's samples were `Mutex` spins on the two threads (`perf record`).
    func start(_ body: @escaping @Sendable () async -> Void) {
        let slot = BodySlot(body)
        // Counted in ``running`` from here on, before the task exists: shutdown never sees "no
        // export holds a batch" while one is about to start.
        let id = tasks.withLock { state in
            state.next += 1
            state.running.updateValue(nil, forKey: state.next)
            return state.next
        }
        let task = Task(executorPreference: executor) { [self] in
            do {
                let body = slot.take()
                await body?()
            }
            _ = tasks.withLock { $0.running.removeValue(forKey: id) }
        }
        let cancelled = tasks.withLock { state -> Bool in
            // Not there when it has already ended (and removed itself): nothing to keep then.
            if state.running.index(forKey: id) != nil { state.running.updateValue(task, forKey: id) }
            return id <= state.cancelledThrough
        }
        if cancelled { task.cancel() }
    }

    /// Cancels every export under way: retries and batches waiting in memory give up (`shutdown`).
    func cancelAll() {
        let running = tasks.withLock { state in
            state.cancelledThrough = state.next
            return state.running.values.compactMap { $0 }
        }
        for task in running { task.cancel() }
    }

    /// Export tasks that have not ended.
    var running: Int { tasks.withLock { $0.running.count } }
}

/// An export task's body, taken (and so released) by the task when it runs.
private final class BodySlot: Sendable {
    private let body: Mutex<(@Sendable () async -> Void)?>

    init(_ body: @escaping @Sendable () async -> Void) { self.body = Mutex(body) }

    func take() -> (@Sendable () async -> Void)? { body.withLock { $0.take() } }
}
