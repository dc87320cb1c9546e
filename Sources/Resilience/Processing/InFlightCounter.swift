import Synchronization

/// The export requests of one signal under way, and their bodies' bytes: what the drain thread
/// compares with the signal's ``ExportWindow`` before it dispatches a batch.
final class InFlightCounter: Sendable {
    /// Requests under way.
    let value = Atomic<Int>(0)
    /// Their bodies' bytes.
    let bytes = Atomic<Int>(0)
}

/// A flag shared with a task (shutdown's flush).
final class FlagBox: Sendable {
    let value = Atomic<Bool>(false)
}
