import Synchronization

/// A clock that moves only when told: for tests of retries, breakers and failure destinations.
///
/// `sleep(until:)` suspends until ``advance(by:)`` moves ``now`` to the deadline (or the task is
/// cancelled). With `advancesOnSleep`, a sleep instead moves the clock to its deadline at once
/// and returns, so code under test runs at full speed while ``sleeps`` records every delay it
/// asked for.
///
/// ```swift
/// let clock = TestClock(advancesOnSleep: true)
/// let exporter = ExporterChain.standard(wrapping: scripted, retry: policy, circuitBreaker: nil, measured: false, clock: clock)
/// _ = try await exporter.export(batch)
/// #expect(clock.sleeps == [.seconds(2), .seconds(2)])
/// ```
///
/// Thread-safety: safe from any thread.
public final class TestClock: Clock, Sendable {
    /// A point on the test clock: the time since the clock was made.
    public struct Instant: InstantProtocol, Sendable, Hashable, Comparable {
        /// The time since the clock was made.
        public var offset: Duration
        /// The instant `offset` after the clock was made.
        public init(offset: Duration) { self.offset = offset }
        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        var id: Int
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [Sleeper] = []
        var sleeps: [Duration] = []
        var nextID = 0
    }

    private let state = Mutex(State())
    private let advancesOnSleep: Bool

    /// - Parameter advancesOnSleep: Whether a sleep moves the clock itself. - Default value: `false`.
    public init(advancesOnSleep: Bool = false) {
        self.advancesOnSleep = advancesOnSleep
    }

    public var now: Instant { state.withLock { $0.now } }
    public var minimumResolution: Duration { .nanoseconds(1) }

    /// Every delay a sleep asked for, in order.
    public var sleeps: [Duration] { state.withLock { $0.sleeps } }

    /// How many sleeps are waiting right now.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        try Task.checkCancellation()
        let id = state.withLock { state -> Int? in
            state.sleeps.append(state.now.duration(to: deadline))
            if advancesOnSleep {
                if deadline > state.now { state.now = deadline }
                return nil
            }
            if deadline <= state.now { return nil }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // A cancellation that came before this registration finds no sleeper to resume:
                // Task.isCancelled (set before the handler runs), read under the lock, catches it.
                let resumeNow = state.withLock { state -> Bool? in
                    if Task.isCancelled { return false }
                    if deadline <= state.now { return true }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return nil
                }
                switch resumeNow {
                case true?: continuation.resume()
                case false?: continuation.resume(throwing: CancellationError())
                case nil: break
                }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let i = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: i)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock forward and wakes every sleep whose deadline has come.
    public func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }
}
