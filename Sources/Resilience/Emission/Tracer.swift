public import Synchronization

/// Starts spans for one instrumentation scope.
///
/// Get one from ``TelemetryPipeline/tracer(scope:version:)``. Cheap to copy; safe from any thread.
///
/// ```swift
/// let tracer = pipeline.tracer(scope: "checkout.http")
/// let span = tracer.startSpan("GET /cart", kind: .server)
/// span.setAttribute("http.request.method", "GET")
/// span.setAttribute("http.response.status_code", 200)
/// span.end()
/// ```
public struct Tracer: Sendable {
    @usableFromInline let intake: Intake
    let recordType: Int32
    /// Whether some route matches span names (then the route is chosen per span).
    let routesBySpanName: Bool

    /// Starts a span. Without `parent` it is the root of a new trace.
    ///
    /// - Parameters:
    ///   - name: The span name.
    ///   - kind: The span's role. - Default value: `.internal`.
    ///   - parent: The parent's context, local or remote (e.g. extracted from `traceparent`).
    ///   - startTime: Unix nanoseconds; now if `nil`.
    @inlinable
    public func startSpan(_ name: String, kind: SpanKind = .internal, parent: SpanContext? = nil, startTime: UInt64? = nil) -> Span {
        // Disabled (OTEL_SDK_DISABLED): one load and a branch, inlined into the caller.
        guard intake.enabled.load(ordering: .relaxed) else {
            return Span(nonRecording: SpanContext(traceID: TraceID(high: 0, low: 0), spanID: SpanID(0), traceFlags: 0))
        }
        return sampledSpan(name, kind: kind, parent: parent, startTime: startTime)
    }

    @usableFromInline
    func sampledSpan(_ name: String, kind: SpanKind, parent: SpanContext?, startTime: UInt64?) -> Span {
        sampledSpan(name, kind: kind, parent: parent, startTime: startTime, state: .current)
    }

    /// The root and child paths are separate copies of ``encodeSpan(_:kind:parent:startTime:traceID:traceFlags:traceState:state:)``:
    /// with the root's literal empty `traceState` the compiler drops the retain and release that a
    /// `String` merged from both paths cost every span.
    @inline(__always)
    private func sampledSpan(_ name: String, kind: SpanKind, parent: SpanContext?, startTime: UInt64?, state: EmitThreadState) -> Span {
        if let parent, parent.isValid {
            return encodeSpan(
                name, kind: kind, parent: parent, startTime: startTime, traceID: parent.traceID, traceFlags: parent.traceFlags,
                traceState: parent.traceState, state: state)
        }
        return encodeSpan(
            name, kind: kind, parent: parent, startTime: startTime, traceID: state.newTraceID(), traceFlags: 0, traceState: "",
            state: state)
    }

    @inline(__always)
    private func encodeSpan(
        _ name: String, kind: SpanKind, parent: SpanContext?, startTime: UInt64?, traceID: TraceID, traceFlags: UInt8, traceState: String,
        state: EmitThreadState
    ) -> Span {
        let intake = self.intake
        var traceFlags = traceFlags
        let sampler = SamplerState(mode: intake.samplerMode.load(ordering: .relaxed), bound: intake.samplerBound.load(ordering: .relaxed))
        guard sampler.shouldSample(traceID: traceID, parent: parent) else {
            return Span(
                nonRecording: SpanContext(traceID: traceID, spanID: state.newSpanID(), traceFlags: traceFlags & ~1, traceState: traceState))
        }
        traceFlags |= 1

        let buffer = state.takeBuffer()
        let type =
            routesBySpanName ? recordType.withRoute(intake.routes.route(spanName: name, scopeRoute: recordType.recordRoute)) : recordType
        buffer.beginSpan(intake: intake, recordType: type)
        let context = SpanContext(traceID: traceID, spanID: state.newSpanID(), traceFlags: traceFlags, traceState: traceState)

        // The span's fixed fields, through one cursor (one reservation; the position stays in a register).
        buffer.withCursor(reserving: 32) { cursor in
            cursor.putTraceID(SpanField.traceID, traceID)
            cursor.putSpanID(SpanField.spanID, context.spanID)
        }
        if !traceState.isEmpty { buffer.putStringField(SpanField.traceState, traceState) }
        withUTF8(name, limit: .max) { nameBytes, nameCount in
            buffer.withCursor(reserving: nameCount + 48) { cursor in
                if let parent, parent.isValid { cursor.putSpanID(SpanField.parentSpanID, parent.spanID) }
                cursor.putBytesField(SpanField.name, nameBytes, nameCount)
                cursor.putTag(SpanField.kind, .varint)
                cursor.put(kind.rawValue)
                cursor.putTag(SpanField.startTime, .fixed64)
                cursor.putFixed64(startTime ?? nowUnixNano())
                cursor.putTag(SpanField.flags, .fixed32)
                cursor.putFixed32(spanFlags(traceFlags: traceFlags, isRemote: parent?.isRemote ?? false))
            }
        }
        return Span(buffer: buffer, generation: buffer.generation, context: context)
    }

    /// Runs `body` in a new span and ends it afterwards; an error thrown by `body` sets the
    /// status to `.error` and is rethrown.
    public func withSpan<Result>(
        _ name: String, kind: SpanKind = .internal, parent: SpanContext? = nil, _ body: (Span) throws -> Result
    ) rethrows -> Result {
        let span = startSpan(name, kind: kind, parent: parent)
        defer { span.end() }
        do {
            return try body(span)
        } catch {
            span.setStatus(.error("\(error)"))
            throw error
        }
    }
}
