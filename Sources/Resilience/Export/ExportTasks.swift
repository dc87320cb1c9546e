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
    private let tasks = Mutex<(next: Int, running: [Int: Task<Void, Never>])>((0, [:]))

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
    func start(_ body: @escaping @Sendable () async -> Void) {
        let slot = BodySlot(body)
        tasks.withLock { state in
            state.next += 1
            let id = state.next
            // Registered under the lock, so the task cannot unregister before it is registered.
            state.running[id] = Task(executorPreference: executor) { [self] in
                do {
                    let body = slot.take()
                    await body?()
                }
                _ = tasks.withLock { $0.running.removeValue(forKey: id) }
            }
        }
    }

    /// Cancels every export under way: retries and batches waiting in memory give up (`shutdown`).
    func cancelAll() {
        for task in tasks.withLock({ $0.running.values }) { task.cancel() }
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
