extension ExportResponse {
    /// An `Export{Trace,Logs}ServiceResponse`, the same over HTTP and gRPC:
    /// `{ partial_success = 1 { int64 rejected = 1; string error_message = 2; } }`.
    ///
    /// - Parameters:
    ///   - status: The HTTP status, for the error's message. - configuration: Its header values
    ///     are redacted from the collector's message.
    /// - Throws: ``OTLPExportError/Code/invalidResponse`` when `body` is not such a message.
    static func parse(_ body: [UInt8], signal: TelemetrySignal, status: Int?, redacting configuration: OTLPExporterConfiguration)
        throws(OTLPExportError) -> ExportResponse
    {
        do {
            return try body.withUnsafeBytes { bytes throws(ProtoDecodingError) -> ExportResponse in
                var reader = ProtoReader(bytes)
                var result = ExportResponse()
                while let field = try reader.nextField() {
                    guard field.number == 1, field.wire == 2 else {
                        try reader.skip(field.wire)
                        continue
                    }
                    var partial = try reader.message()
                    while let inner = try partial.nextField() {
                        switch (inner.number, inner.wire) {
                        case (1, 0): result.rejectedRecords = Int(truncatingIfNeeded: try partial.varint())
                        case (2, 2): result.errorMessage = configuration.redactingHeaderValues(try partial.string())
                        default: try partial.skip(inner.wire)
                        }
                    }
                }
                return result
            }
        } catch {
            throw OTLPExportError(
                code: .invalidResponse, statusCode: status, message: "response body is not an OTLP \(signal) response: \(error)")
        }
    }
}
