public import Synchronization

// OTLP logs.proto LogRecord fields, encoded by hand.
enum LogField {
    static let time = 1, severityNumber = 2, severityText = 3, body = 5, attributes = 6
    static let droppedAttributes = 7, flags = 8, traceID = 9, spanID = 10, observedTime = 11, eventName = 12
}

/// Emits log records for one instrumentation scope (the OpenTelemetry Logs API "Logger").
///
/// Get one from ``TelemetryPipeline/logger(scope:version:)``. Cheap to copy; safe from any thread.
/// Each record is encoded on the caller's thread into a pooled buffer and copied into the ring:
/// nothing is allocated per record in steady state.
///
/// ```swift
/// let audit = pipeline.logger(scope: "audit")
/// audit.emit(severity: .info, body: "user signed in") { $0.set("user.id", 42) }
/// ```
public struct TelemetryLogger: Sendable {
    @usableFromInline let intake: Intake
    let recordType: Int32
    /// Whether some route matches event names (then the route is chosen per record).
    let routesByEventName: Bool
    /// What this logger does about stack traces when the configuration leaves
    /// ``PipelineConfiguration/exceptionStackTraces`` unset (encoded; 0: at `.error` and above).
    var stackTraceFallback: UInt8 = 0

    init(intake: Intake, recordType: Int32, routesByEventName: Bool) {
        self.intake = intake
        self.recordType = recordType
        self.routesByEventName = routesByEventName
    }

    /// This logger, with `capture` as its rule for stack traces when the configuration does
    /// not set ``PipelineConfiguration/exceptionStackTraces``. Log bridges use it to keep their
    /// own behaviour (the swift-log handler passes `.never`); a configured value still wins.
    public func withUnsetStackTraceRule(_ capture: StackTraceCapture) -> TelemetryLogger {
        var copy = self
        copy.stackTraceFallback = StackTraceCapture.encode(capture)
        return copy
    }

    /// Emits a log record with a string body.
    ///
    /// - Parameters:
    ///   - severity: - Default value: `.info`.
    ///   - body: The message.
    ///   - eventName: The OTel event name, if this record is an event.
    ///   - context: The span this record belongs to (trace and span ids, flags).
    ///   - timestamp: When it happened, Unix nanoseconds; the observed time if `nil`.
    ///   - error: An error this record reports. It sets `exception.type` (the qualified type name)
    ///     and `exception.message` (`String(describing:)`), and `exception.stacktrace` at or above the
    ///     threshold of ``PipelineConfiguration/exceptionStackTraces`` (`.error` when not set).
    ///     Attributes that `attributes` sets under those keys win over the derived ones.
    ///   - attributes: Sets the record's attributes.
    /// - Returns: ``EmitResult/queued`` (batch), the export's outcome (simple), or why it was dropped
    ///   (``DropReason/notRecorded`` while the SDK is disabled).
    @discardableResult
    @inlinable
    public func emit(
        severity: Severity = .info, body: String, eventName: String? = nil, context: SpanContext? = nil,
        timestamp: UInt64? = nil, error: (any Error)? = nil, attributes: (inout AttributeWriter) -> Void = { _ in }
    ) -> EmitResult {
        // Disabled (OTEL_SDK_DISABLED): one load and a branch, inlined into the caller.
        guard intake.enabled.load(ordering: .relaxed) else { return .dropped(DropReason("not_recorded")) }
        return record(
            severity: severity, body: body, eventName: eventName, context: context, timestamp: timestamp, error: error,
            attributes: attributes)
    }

    @usableFromInline
    func record(
        severity: Severity, body: String, eventName: String?, context: SpanContext?,
        timestamp: UInt64?, error: (any Error)?, attributes: (inout AttributeWriter) -> Void
    ) -> EmitResult {
        encode(severity: severity, eventName: eventName, context: context, timestamp: timestamp, error: error, attributes) {
            buffer, limit in
            withUTF8(body, limit: limit) { bytes, count in
                buffer.withCursor(reserving: count + 16) { cursor in
                    cursor.putTag(LogField.body, .lengthDelimited)
                    cursor.putVarint(UInt64(lengthFieldSize(field: AnyValueField.string, count)))
                    cursor.putBytesField(AnyValueField.string, bytes, count)
                }
            }
        }
    }

    /// Emits a log record whose body is any value (a map, an array, bytes, …). The parameters
    /// are those of ``emit(severity:body:eventName:context:timestamp:error:attributes:)-(_,String,_,_,_,_,_)``.
    @discardableResult
    @inlinable
    public func emit(
        severity: Severity = .info, body: AttributeValue, eventName: String? = nil, context: SpanContext? = nil,
        timestamp: UInt64? = nil, error: (any Error)? = nil, attributes: (inout AttributeWriter) -> Void = { _ in }
    ) -> EmitResult {
        // Disabled (OTEL_SDK_DISABLED): one load and a branch, inlined into the caller.
        guard intake.enabled.load(ordering: .relaxed) else { return .dropped(DropReason("not_recorded")) }
        return record(
            severity: severity, body: body, eventName: eventName, context: context, timestamp: timestamp, error: error,
            attributes: attributes)
    }

    @usableFromInline
    func record(
        severity: Severity, body: AttributeValue, eventName: String?, context: SpanContext?,
        timestamp: UInt64?, error: (any Error)?, attributes: (inout AttributeWriter) -> Void
    ) -> EmitResult {
        encode(severity: severity, eventName: eventName, context: context, timestamp: timestamp, error: error, attributes) {
            buffer, limit in
            buffer.putAnyValueField(LogField.body, body, size: anyValueSize(body, limit: limit), limit: limit)
        }
    }

    /// One record: the header, the body that `writeBody` encodes (given the value length limit),
    /// then the attributes and the hand-off to the pipeline. Shared by both body types.
    @inline(__always)
    private func encode(
        severity: Severity, eventName: String?, context: SpanContext?, timestamp: UInt64?, error: (any Error)?,
        _ attributes: (inout AttributeWriter) -> Void, body writeBody: (ScratchBuffer, Int) -> Void
    ) -> EmitResult {
        let buffer = EmitThreadState.current.takeBuffer()
        buffer.count = 0
        writeHeader(buffer, severity: severity, eventName: eventName, context: context, timestamp: timestamp)
        writeBody(buffer, intake.limits.valueLengthLimit ?? .max)
        return finish(buffer, severity: severity, eventName: eventName, error: error, attributes)
    }

    @inline(__always)
    private func writeHeader(_ buffer: ScratchBuffer, severity: Severity, eventName: String?, context: SpanContext?, timestamp: UInt64?) {
        let observed = nowUnixNano()
        // Times, severity and trace context through one cursor: at most 18 + 2 + 6 + 18 + 10 + 5 bytes and the
        // severity's text.
        let staticText = severity.staticText
        let text = UnsafeRawPointer(staticText.utf8Start), textCount = staticText.utf8CodeUnitCount
        buffer.withCursor(reserving: textCount + 64) { cursor in
            cursor.putTag(LogField.time, .fixed64)
            cursor.putFixed64(timestamp ?? observed)
            cursor.putTag(LogField.observedTime, .fixed64)
            cursor.putFixed64(observed)
            if severity.number > 0 {
                cursor.putTag(LogField.severityNumber, .varint)
                cursor.put(severity.number)
                cursor.putBytesField(LogField.severityText, text, textCount)
            }
            if let context, context.isValid {
                cursor.putTraceID(LogField.traceID, context.traceID)
                cursor.putSpanID(LogField.spanID, context.spanID)
                cursor.putTag(LogField.flags, .fixed32)
                cursor.putFixed32(UInt32(context.traceFlags))
            }
        }
        if let eventName { buffer.putStringField(LogField.eventName, eventName) }
    }

    @inline(__always)
    private func finish(
        _ buffer: ScratchBuffer, severity: Severity, eventName: String?, error: (any Error)?, _ attributes: (inout AttributeWriter) -> Void
    ) -> EmitResult {
        var writer = AttributeWriter(buffer: buffer, field: LogField.attributes, limits: intake.limits)
        if let error {
            writer.watchesExceptionKeys = true
            attributes(&writer)
            addException(error, severity: severity, to: &writer)
        } else {
            attributes(&writer)
        }
        if writer.dropped > 0 {
            buffer.reserve(8)
            buffer.putTag(LogField.droppedAttributes, .varint)
            buffer.putVarint(UInt64(writer.dropped))
        }
        var type = recordType
        if routesByEventName, let eventName {
            type = type.withRoute(intake.routes.route(eventName: eventName, scopeRoute: type.recordRoute))
        }
        let result = intake.submit(buffer.bytes, type: type)
        EmitThreadState.current.giveBack(buffer)
        return result
    }

    @inline(never)
    private func addException(_ error: any Error, severity: Severity, to writer: inout AttributeWriter) {
        let callerSet = writer.exceptionKeysSet
        if callerSet & 1 == 0 { writer.set("exception.type", ExceptionAttributes.type(of: error)) }
        if callerSet & 2 == 0 { writer.set("exception.message", ExceptionAttributes.message(of: error)) }
        if callerSet & 4 == 0,
            ExceptionAttributes.capturesStackTrace(
                severity: severity, configured: intake.stackTraceThreshold.load(ordering: .relaxed), fallback: stackTraceFallback)
        {
            writer.set("exception.stacktrace", ExceptionAttributes.stackTrace())
        }
    }
}
