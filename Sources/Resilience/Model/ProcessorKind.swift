/// How records go from the ring to the exporter.
public enum ProcessorKind: Sendable, Hashable {
    /// Batched by a drain thread (the default).
    case batch
    /// Each record exported on its own, synchronously; `end()`/`emit()` return the outcome.
    /// For tests and very low volumes.
    case simple
}
