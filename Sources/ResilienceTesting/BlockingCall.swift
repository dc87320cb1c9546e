import Foundation

/// Runs blocking work (waiting for a child process, reading a pipe to its end) on a thread of its
/// own and awaits it, so that it does not hold one of the few threads of Swift's cooperative pool.
///
/// On a two-core machine the pool has two threads: two tests blocked in `waitUntilExit` stall
/// every other async test — and every pipeline's export and replay task scheduled there — until
/// they return. Under load that stalled a whole test run past its time limits.
public func blockingCall<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
