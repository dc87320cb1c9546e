import Synchronization

/// The sends of one segment's replay under way (``Replayer``), so that cancelling the round
/// cancels them: a send started after the cancellation is cancelled as it is added.
///
/// Thread-safety: safe from any thread.
final class SendsUnderWay: Sendable {
    private let state = Mutex<(cancelled: Bool, tasks: Set<Task<Replayer.Outcome, Never>>)>((false, []))

    func add(_ task: Task<Replayer.Outcome, Never>) {
        let cancelled = state.withLock { state -> Bool in
            if !state.cancelled { state.tasks.insert(task) }
            return state.cancelled
        }
        if cancelled { task.cancel() }
    }

    /// The send's outcome (`nil` for damage), and the send forgotten.
    func answer(_ task: Task<Replayer.Outcome, Never>?) async -> Replayer.Outcome? {
        guard let task else { return nil }
        let outcome = await task.value
        _ = state.withLock { $0.tasks.remove(task) }
        return outcome
    }

    func cancelAll() {
        let tasks = state.withLock { state in
            state.cancelled = true
            defer { state.tasks = [] }
            return state.tasks
        }
        for task in tasks { task.cancel() }
    }
}
