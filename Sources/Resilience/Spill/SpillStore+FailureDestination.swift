extension SpillStore: FailureDestination {
    func keep(_ batch: ExportBatch, kind: ExportFailureKind, status: Int?, message: String) throws(ResilienceError)
        -> ExportResponse.Custody?
    {
        do throws(SegmentWriter.Failure) {
            if kind == .misconfigured {
                return .rejected(segment: try keep(batch, in: .rejected, status: status, kind: kind, message: message))
            }
            guard kind.isRetryable || kind == .circuitOpen || kind == .shutdown || kind == .overflow else { return nil }
            return .spilled(segment: try append(batch, to: .spilled))
        } catch {
            throw ResilienceError(
                code: error.isDiskFull ? .diskFull : .spillFailed, message: "the spill store could not write the batch: \(error.message)",
                cause: error)
        }
    }

    func keepCopy(_ batch: ExportBatch, status: Int?, kind: ExportFailureKind, message: String) -> String? {
        try? keep(batch, in: .refused, status: status, kind: kind, message: message)
    }

    var description: String { "the spill store in \(configuration.directory)" }
}
