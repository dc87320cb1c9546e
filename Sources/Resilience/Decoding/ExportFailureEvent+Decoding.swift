extension ExportFailureEvent {
    /// The failed spans, decoded now (call it only when you need them).
    /// - Throws: ``ProtoDecodingError`` if the batch is not a trace request.
    public func spans() throws -> [DecodedSpan] {
        guard let batch, batch.signal == .traces else { return [] }
        return try OTLPDecoding.spans(from: batch.body)
    }

    /// The failed log records, decoded now — e.g. to write the audit records that failed to a local file.
    /// - Throws: ``ProtoDecodingError`` if the batch is not a logs request.
    public func logRecords() throws -> [DecodedLogRecord] {
        guard let batch, batch.signal == .logs else { return [] }
        return try OTLPDecoding.logRecords(from: batch.body)
    }
}
