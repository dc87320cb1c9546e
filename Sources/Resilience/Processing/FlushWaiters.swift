/// The callers of ``BatchProcessor/forceFlush()`` and whether the drain thread is gone.
struct FlushWaiters {
    var list: [(target: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
    var closed = false
}
