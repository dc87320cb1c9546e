/// What happened to one emitted record, as far as the emitting call can know.
public enum EmitResult: Sendable {
    /// In the ring; the batch processor will export it.
    case queued
    /// Exported (simple processor).
    case exported
    /// Dropped, and counted under `reason`.
    case dropped(DropReason)
    /// The export failed (simple processor); the record is counted as dropped (`export_failed`).
    case failed(any Error)

    /// `true` for `.queued` and `.exported`.
    public var isAccepted: Bool {
        switch self {
        case .queued, .exported: return true
        case .dropped, .failed: return false
        }
    }
}
