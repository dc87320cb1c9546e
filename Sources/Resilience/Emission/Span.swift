// OTLP trace.proto Span fields, encoded by hand.
enum SpanField {
    static let traceID = 1, spanID = 2, traceState = 3, parentSpanID = 4, name = 5, kind = 6
    static let startTime = 7, endTime = 8, attributes = 9, droppedAttributes = 10
    static let events = 11, droppedEvents = 12, links = 13, droppedLinks = 14, status = 15, flags = 16
}

/// A span being recorded: a handle to its bytes, encoded as you go.
///
/// Attributes, events and links are encoded into a pooled per-thread buffer the moment they are
/// set; ``end(at:)`` writes the last fields and copies the span into the pipeline's ring. Nothing
/// is allocated per span in steady state.
///
/// Thread-safety: a span may move between threads and tasks, but must be used by one at a time.
/// After ``end(at:)`` every copy of the handle is inert: further calls do nothing.
/// A span that is never ended is never exported; its buffer is reclaimed when the last copy goes.
public struct Span: @unchecked Sendable {
    let buffer: ScratchBuffer
    let generation: UInt32
    /// The identity of this span, for children, links and propagation.
    public let context: SpanContext

    @inline(__always)
    private var isLive: Bool { buffer.generation == generation }

    private func attributeWriter() -> AttributeWriter {
        AttributeWriter(buffer: buffer, field: SpanField.attributes, limits: buffer.core!.limits,
                        count: buffer.attributeCount, dropped: buffer.droppedAttributes)
    }

    private func store(_ writer: AttributeWriter) {
        buffer.attributeCount = writer.count
        buffer.droppedAttributes = writer.dropped
    }

    /// Whether the span is still recording (not ended).
    public var isRecording: Bool { isLive }

    /// Sets a string attribute.
    public func setAttribute(_ key: String, _ value: String) {
        guard isLive else { return }
        var writer = attributeWriter(); writer.set(key, value); store(writer)
    }

    /// Sets an integer attribute.
    public func setAttribute(_ key: String, _ value: Int) {
        guard isLive else { return }
        var writer = attributeWriter(); writer.set(key, value); store(writer)
    }

    /// Sets a boolean attribute.
    public func setAttribute(_ key: String, _ value: Bool) {
        guard isLive else { return }
        var writer = attributeWriter(); writer.set(key, value); store(writer)
    }

    /// Sets a floating-point attribute.
    public func setAttribute(_ key: String, _ value: Double) {
        guard isLive else { return }
        var writer = attributeWriter(); writer.set(key, value); store(writer)
    }

    /// Sets an attribute of any type (bytes, arrays, …).
    public func setAttribute(_ key: String, _ value: AttributeValue) {
        guard isLive else { return }
        var writer = attributeWriter(); writer.set(key, value); store(writer)
    }

    /// Sets several attributes through one writer.
    public func setAttributes(_ body: (inout AttributeWriter) -> Void) {
        guard isLive else { return }
        var writer = attributeWriter(); body(&writer); store(writer)
    }

    /// Adds an event, stamped now unless `time` (Unix nanoseconds) is given.
    /// Past ``AttributeLimits/eventCountLimit`` events, further ones are counted as dropped.
    public func addEvent(_ name: String, at time: UInt64? = nil, attributes: (inout AttributeWriter) -> Void = { _ in }) {
        guard isLive, let core = buffer.core else { return }
        guard buffer.eventCount < core.limits.eventCountLimit else {
            buffer.droppedEvents &+= 1
            return
        }
        buffer.eventCount += 1
        // Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
        let start = buffer.openLength(field: SpanField.events)
        buffer.reserve(10)
        buffer.putTag(1, .fixed64)
        buffer.putFixed64(time ?? nowUnixNano())
        buffer.putStringField(2, name)
        var writer = AttributeWriter(buffer: buffer, field: 3, limits: core.limits)
        attributes(&writer)
        if writer.dropped > 0 {
            buffer.reserve(8)
            buffer.putTag(4, .varint)
            buffer.putVarint(UInt64(writer.dropped))
        }
        buffer.closeLength(start)
    }

    /// Adds a link to another span. Past ``AttributeLimits/linkCountLimit`` links, further ones are counted as dropped.
    public func addLink(_ linked: SpanContext, attributes: (inout AttributeWriter) -> Void = { _ in }) {
        guard isLive, let core = buffer.core else { return }
        guard buffer.linkCount < core.limits.linkCountLimit else {
            buffer.droppedLinks &+= 1
            return
        }
        buffer.linkCount += 1
        // Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3;
        //        repeated KeyValue attributes = 4; uint32 dropped_attributes_count = 5; fixed32 flags = 6; }
        let start = buffer.openLength(field: SpanField.links)
        buffer.putTraceID(1, linked.traceID)
        buffer.putSpanID(2, linked.spanID)
        if !linked.traceState.isEmpty { buffer.putStringField(3, linked.traceState) }
        var writer = AttributeWriter(buffer: buffer, field: 4, limits: core.limits)
        attributes(&writer)
        buffer.reserve(16)
        if writer.dropped > 0 {
            buffer.putTag(5, .varint)
            buffer.putVarint(UInt64(writer.dropped))
        }
        buffer.putTag(6, .fixed32)
        buffer.putFixed32(spanFlags(traceFlags: linked.traceFlags, isRemote: linked.isRemote))
        buffer.closeLength(start)
    }

    /// Sets the status; the last call wins. A message is only kept with `.error`.
    public func setStatus(_ status: SpanStatus) {
        guard isLive else { return }
        buffer.statusCode = status.code
        buffer.statusMessage = status.code == .error ? status.message : ""
    }

    /// Ends the span now (or at `time`, Unix nanoseconds) and hands it to the pipeline.
    ///
    /// With the batch processor this returns at once: ``EmitResult/queued``, or
    /// ``EmitResult/dropped(_:)`` when the ring's overflow policy dropped it. With the simple
    /// processor it returns after the export, with its outcome. Calling it again does nothing
    /// and returns ``EmitResult/dropped(_:)`` with ``DropReason/alreadyEnded``.
    @discardableResult
    public func end(at time: UInt64? = nil) -> EmitResult {
        guard isLive, let core = buffer.core else { return .dropped(.alreadyEnded) }
        buffer.reserve(64)
        buffer.putTag(SpanField.endTime, .fixed64)
        buffer.putFixed64(time ?? nowUnixNano())
        if buffer.droppedAttributes > 0 {
            buffer.putTag(SpanField.droppedAttributes, .varint)
            buffer.putVarint(UInt64(buffer.droppedAttributes))
        }
        if buffer.droppedEvents > 0 {
            buffer.putTag(SpanField.droppedEvents, .varint)
            buffer.putVarint(UInt64(buffer.droppedEvents))
        }
        if buffer.droppedLinks > 0 {
            buffer.putTag(SpanField.droppedLinks, .varint)
            buffer.putVarint(UInt64(buffer.droppedLinks))
        }
        if buffer.statusCode != .unset {
            // Status { string message = 2; StatusCode code = 3; }
            let start = buffer.openLength(field: SpanField.status)
            if !buffer.statusMessage.isEmpty { buffer.putStringField(2, buffer.statusMessage) }
            buffer.reserve(4)
            buffer.putTag(3, .varint)
            buffer.putVarint(UInt64(buffer.statusCode.rawValue))
            buffer.closeLength(start)
        }
        let result = core.submit(buffer, type: buffer.recordType)
        buffer.core = nil
        EmitThreadState.current.giveBack(buffer)
        return result
    }
}

/// OTLP `SpanFlags`: the W3C trace flags in bits 0–7, then "has is-remote" (bit 8) and "is remote" (bit 9).
@inline(__always)
func spanFlags(traceFlags: UInt8, isRemote: Bool) -> UInt32 {
    UInt32(traceFlags) | 0x100 | (isRemote ? 0x200 : 0)
}

extension ScratchBuffer {
    @inline(__always)
    func putTraceID(_ field: Int, _ id: TraceID) {
        reserve(20)
        putTag(field, .lengthDelimited)
        put(16)
        base.storeBytes(of: id.high.bigEndian, toByteOffset: count, as: UInt64.self)
        base.storeBytes(of: id.low.bigEndian, toByteOffset: count + 8, as: UInt64.self)
        count += 16
    }

    @inline(__always)
    func putSpanID(_ field: Int, _ id: SpanID) {
        reserve(12)
        putTag(field, .lengthDelimited)
        put(8)
        base.storeBytes(of: id.value.bigEndian, toByteOffset: count, as: UInt64.self)
        count += 8
    }
}
