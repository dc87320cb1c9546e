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
    /// `nil` for a span that records nothing (not sampled, or the SDK is disabled): no retain.
    /// The public methods test it inline (``isInert``), so that calls on such a span cost a branch.
    @usableFromInline let storage: ScratchBuffer?
    @usableFromInline let generation: UInt32
    /// The buffer; only read after ``live`` returned a header (then `storage` is not `nil`).
    @inline(__always) var buffer: ScratchBuffer { storage.unsafelyUnwrapped }
    /// The identity of this span, for children, links and propagation.
    public let context: SpanContext

    /// A span that never records (no buffer).
    @inlinable var isInert: Bool { storage == nil }

    /// The buffer's state, if this handle still owns it (the span has not ended).
    @inline(__always)
    private var live: UnsafeMutablePointer<ScratchHeader>? {
        guard let storage else { return nil }
        let header = storage.header
        return header.pointee.generation == generation ? header : nil
    }

    /// Counts one more span attribute against the limit; `false` (and counted as dropped) past it.
    @inline(__always)
    private func admitAttribute() -> UnsafeMutablePointer<ScratchHeader>? {
        guard let h = live else { return nil }
        guard h.pointee.attributeCount < h.pointee.countLimit else {
            h.pointee.droppedAttributes &+= 1
            return nil
        }
        h.pointee.attributeCount &+= 1
        return h
    }

    init(buffer: ScratchBuffer, generation: UInt32, context: SpanContext) {
        self.storage = buffer
        self.generation = generation
        self.context = context
    }

    /// A span that records nothing but carries `context` (a span that was not sampled, or any
    /// span while the SDK is disabled). Its calls do nothing; ``end(at:)`` returns
    /// ``EmitResult/dropped(_:)`` with ``DropReason/notRecorded``.
    @inlinable
    public init(nonRecording context: SpanContext) {
        self.storage = nil
        self.generation = 0
        self.context = context
    }

    /// Whether the span is still recording (sampled, and not ended).
    public var isRecording: Bool { live != nil }

    /// Sets a string attribute.
    @inlinable
    public func setAttribute(_ key: String, _ value: String) {
        if !isInert { recordAttribute(key, value) }
    }

    @usableFromInline
    func recordAttribute(_ key: String, _ value: String) {
        guard let h = admitAttribute() else { return }
        buffer.putAttribute(field: SpanField.attributes, key: key, string: value, valueLimit: h.pointee.valueLimit)
    }

    /// Sets an integer attribute.
    @inlinable
    public func setAttribute(_ key: String, _ value: Int) {
        if !isInert { recordAttribute(key, value) }
    }

    @usableFromInline
    func recordAttribute(_ key: String, _ value: Int) {
        guard admitAttribute() != nil else { return }
        buffer.putAttribute(field: SpanField.attributes, key: key, int: Int64(value))
    }

    /// Sets a boolean attribute.
    @inlinable
    public func setAttribute(_ key: String, _ value: Bool) {
        if !isInert { recordAttribute(key, value) }
    }

    @usableFromInline
    func recordAttribute(_ key: String, _ value: Bool) {
        guard admitAttribute() != nil else { return }
        buffer.putAttribute(field: SpanField.attributes, key: key, bool: value)
    }

    /// Sets a floating-point attribute.
    @inlinable
    public func setAttribute(_ key: String, _ value: Double) {
        if !isInert { recordAttribute(key, value) }
    }

    @usableFromInline
    func recordAttribute(_ key: String, _ value: Double) {
        guard admitAttribute() != nil else { return }
        buffer.putAttribute(field: SpanField.attributes, key: key, double: value)
    }

    /// Sets an attribute of any type (bytes, arrays, …).
    @inlinable
    public func setAttribute(_ key: String, _ value: AttributeValue) {
        if !isInert { recordAttribute(key, value) }
    }

    @usableFromInline
    func recordAttribute(_ key: String, _ value: AttributeValue) {
        guard let h = admitAttribute() else { return }
        buffer.putAttribute(field: SpanField.attributes, key: key, value: value, valueLimit: h.pointee.valueLimit)
    }

    /// Sets several attributes through one writer.
    public func setAttributes(_ body: (inout AttributeWriter) -> Void) {
        guard let h = live else { return }
        var writer = AttributeWriter(
            buffer: buffer, field: SpanField.attributes, countLimit: h.pointee.countLimit, valueLimit: h.pointee.valueLimit,
            count: h.pointee.attributeCount, dropped: h.pointee.droppedAttributes)
        body(&writer)
        h.pointee.attributeCount = writer.count
        h.pointee.droppedAttributes = writer.dropped
    }

    /// Adds an event, stamped now unless `time` (Unix nanoseconds) is given.
    /// Past ``AttributeLimits/eventCountLimit`` events, further ones are counted as dropped.
    public func addEvent(_ name: String, at time: UInt64? = nil, attributes: (inout AttributeWriter) -> Void = { _ in }) {
        guard let h = live else { return }
        guard h.pointee.eventCount < h.pointee.eventLimit else {
            h.pointee.droppedEvents &+= 1
            return
        }
        h.pointee.eventCount += 1
        // Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
        let start = buffer.openLength(field: SpanField.events)
        buffer.reserve(10)
        buffer.putTag(1, .fixed64)
        buffer.putFixed64(time ?? nowUnixNano())
        buffer.putStringField(2, name)
        var writer = AttributeWriter(buffer: buffer, field: 3, countLimit: h.pointee.countLimit, valueLimit: h.pointee.valueLimit)
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
        guard let h = live else { return }
        guard h.pointee.linkCount < h.pointee.linkLimit else {
            h.pointee.droppedLinks &+= 1
            return
        }
        h.pointee.linkCount += 1
        // Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3;
        //        repeated KeyValue attributes = 4; uint32 dropped_attributes_count = 5; fixed32 flags = 6; }
        let start = buffer.openLength(field: SpanField.links)
        buffer.putTraceID(1, linked.traceID)
        buffer.putSpanID(2, linked.spanID)
        if !linked.traceState.isEmpty { buffer.putStringField(3, linked.traceState) }
        var writer = AttributeWriter(buffer: buffer, field: 4, countLimit: h.pointee.countLimit, valueLimit: h.pointee.valueLimit)
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

    /// Changes the span's name. The bytes keep the first name and add the new one after it:
    /// protobuf readers take the last value of a field that occurs twice, so OTLP receivers see
    /// only the new name.
    public func rename(_ name: String) {
        guard live != nil else { return }
        buffer.putStringField(SpanField.name, name)
    }

    /// Sets the status; the last call wins. A message is only kept with `.error`.
    public func setStatus(_ status: SpanStatus) {
        guard let h = live else { return }
        h.pointee.statusCode = status.code.rawValue
        buffer.statusMessage = status.code == .error ? status.message : ""
    }

    /// Ends the span now (or at `time`, Unix nanoseconds) and hands it to the pipeline.
    ///
    /// With the batch processor this returns at once: ``EmitResult/queued``, or
    /// ``EmitResult/dropped(_:)`` when the ring's overflow policy dropped it. With the simple
    /// processor it returns after the export, with its outcome. Calling it again does nothing
    /// and returns ``EmitResult/dropped(_:)`` with ``DropReason/alreadyEnded``.
    @discardableResult @inlinable
    public func end(at time: UInt64? = nil) -> EmitResult {
        if isInert { return .dropped(DropReason("not_recorded")) }
        return finish(at: time)
    }

    @usableFromInline
    func finish(at time: UInt64?) -> EmitResult {
        guard let h = live, let intake = h.pointee.intake else { return .dropped(.alreadyEnded) }
        buffer.reserve(64)
        buffer.putTag(SpanField.endTime, .fixed64)
        buffer.putFixed64(time ?? nowUnixNano())
        if h.pointee.droppedAttributes > 0 {
            buffer.putTag(SpanField.droppedAttributes, .varint)
            buffer.putVarint(UInt64(h.pointee.droppedAttributes))
        }
        if h.pointee.droppedEvents > 0 {
            buffer.putTag(SpanField.droppedEvents, .varint)
            buffer.putVarint(UInt64(h.pointee.droppedEvents))
        }
        if h.pointee.droppedLinks > 0 {
            buffer.putTag(SpanField.droppedLinks, .varint)
            buffer.putVarint(UInt64(h.pointee.droppedLinks))
        }
        if h.pointee.statusCode != 0 {
            // Status { string message = 2; StatusCode code = 3; }
            let start = buffer.openLength(field: SpanField.status)
            if !buffer.statusMessage.isEmpty { buffer.putStringField(2, buffer.statusMessage) }
            buffer.reserve(4)
            buffer.putTag(3, .varint)
            buffer.putVarint(UInt64(h.pointee.statusCode))
            buffer.closeLength(start)
        }
        let result = intake._withUnsafeGuaranteedRef { $0.submit(buffer.bytes, type: h.pointee.recordType) }
        buffer.finishSpan()
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
        withCursor(reserving: 20) { $0.putTraceID(field, id) }
    }

    @inline(__always)
    func putSpanID(_ field: Int, _ id: SpanID) {
        withCursor(reserving: 12) { $0.putSpanID(field, id) }
    }
}

extension ByteCursor {
    /// A 16-byte trace id as a length-delimited field (at most 19 bytes for fields under 16).
    @inline(__always)
    mutating func putTraceID(_ field: Int, _ id: TraceID) {
        putTag(field, .lengthDelimited)
        put(16)
        base.storeBytes(of: id.high.bigEndian, toByteOffset: at, as: UInt64.self)
        base.storeBytes(of: id.low.bigEndian, toByteOffset: at &+ 8, as: UInt64.self)
        at &+= 16
    }

    /// An 8-byte span id as a length-delimited field.
    @inline(__always)
    mutating func putSpanID(_ field: Int, _ id: SpanID) {
        putTag(field, .lengthDelimited)
        put(8)
        base.storeBytes(of: id.value.bigEndian, toByteOffset: at, as: UInt64.self)
        at &+= 8
    }
}
