/// The areas of a spill directory (``SpillLayout``): where the pipeline keeps records it could not deliver.
package enum SpillArea: String, CaseIterable, Sendable, CustomStringConvertible {
    case spilled
    case rejected
    case refused

    /// The path below the spill directory for `signal`.
    package func relativePath(_ signal: TelemetrySignal) -> String {
        self == .spilled ? signal.description : "\(rawValue)/\(signal)"
    }

    /// Whether the pipeline counts its records as in its custody (``PipelineStats/Signal/onDisk``):
    /// the refused area holds copies of records already counted as dropped.
    package var holdsRecords: Bool { self != .refused }

    package var description: String { rawValue }
}
