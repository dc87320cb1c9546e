/// Where the pipeline keeps a batch that cannot be delivered now, in its custody, for later.
///
/// The spill store is the one implementation (``SpillStore``); the chain's policies and the
/// processors name only this protocol. Each call writes the batch or throws; booking the
/// outcome (``Ledger/kept(_:_:attempt:error:kind:)`` or a drop) is the caller's.
///
/// Thread-safety: implementations are safe to call concurrently.
protocol FailureDestination: AnyObject, Sendable, CustomStringConvertible {
    /// Keeps `batch`, which failed with an error of `kind`, and says where; `nil` when this
    /// destination does not take failures of that kind (a permanent error: the batch is dropped).
    ///
    /// Spill store: retryable failures, an open breaker, shutdown and overflow go to the spilled
    /// area (replayed when the collector answers); a misconfiguration to the rejected area
    /// (replayed once the configuration changes), with `message` beside it.
    /// - Throws: ``ResilienceError`` with code `diskFull` or `spillFailed`: nothing was kept.
    func keep(_ batch: ExportBatch, kind: ExportFailureKind, status: Int?, message: String) throws(ResilienceError)
        -> ExportResponse.Custody?

    /// Keeps a copy of a request the collector refused for good, for inspection; returns where,
    /// or `nil` (best effort: the records are dropped either way).
    func keepCopy(_ batch: ExportBatch, status: Int?, kind: ExportFailureKind, message: String) -> String?
}

extension ExportResponse.Custody {
    /// The segment that holds the batch.
    var segment: String {
        switch self {
        case .spilled(let segment), .rejected(let segment): segment
        }
    }
}

extension FailureDestination {
    /// Hands `batch` to this destination and books the outcome in `ledger`: kept (and where), or,
    /// when the write failed, dropped as `disk_full` or `spill_failed`, reported with `error`'s kind.
    /// - Returns: `true` kept, `false` dropped; `nil`, with nothing booked, when the destination does
    ///   not take failures of `kind` (the caller books what happens to the batch then).
    @discardableResult
    func keep(_ batch: ExportBatch, booking ledger: Ledger, _ error: ResilienceError, kind: ExportFailureKind) -> Bool? {
        do throws(ResilienceError) {
            guard let custody = try keep(batch, kind: kind, status: nil, message: error.message) else { return nil }
            ledger.kept(batch, custody, attempt: 0, error: error, kind: kind)
            return true
        } catch {
            ledger.dropped(batch, error.code == .diskFull ? .diskFull : .spillFailed, attempt: 0, error: error, kind: kind)
            return false
        }
    }
}
