import Synchronization

/// Ends the retry back-offs of one destination's exports when its pipeline shuts down with a
/// spill store: a batch waiting out a back-off is sent once more at once, and a batch whose
/// attempt began after the cut is not retried — what still fails goes to the store (replayed
/// when the collector answers) instead of holding shutdown for the back-off's seconds.
///
/// Without a spill store there is no cut: a retry within the shutdown deadline may still deliver
/// a batch that would otherwise be dropped.
///
/// Thread-safety: safe from any thread; ``cut()`` may come at any moment of a wait.
final class RetryCutoff: Sendable {
    private struct State {
        var isCut = false
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    /// Whether ``cut()`` was called.
    var isCut: Bool { state.withLock { $0.isCut } }

    /// Ends every wait under way and every later one at once. Idempotent.
    func cut() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.isCut = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits `delay` on `clock`, or until ``cut()``, whichever comes first.
    ///
    /// - Returns: `true` when the whole delay passed, `false` when the cut ended it.
    /// - Throws: `CancellationError` when the calling task is cancelled.
    func sleep<C: Clock>(for delay: Duration, on clock: C) async throws -> Bool where C.Duration == Duration {
        if isCut { return false }
        let slept = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await clock.sleep(for: delay)
                return true
            }
            group.addTask {
                await self.waitForCut()
                return false
            }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
        try Task.checkCancellation()
        return slept
    }

    /// Returns at ``cut()``, or when the calling task is cancelled.
    private func waitForCut() async {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Task.isCancelled is set before the handler below runs: read under the lock, it
                // closes the gap between this registration and a cancellation.
                let now = state.withLock { state -> Bool in
                    if state.isCut || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
