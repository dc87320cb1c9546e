public import Instrumentation
public import Resilience
import ServiceContextModule
import Synchronization
public import Tracing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A swift-distributed-tracing `Span` recorded by Spillway (see ``SpillwayTracer``).
///
/// Events, links and the status are encoded when they are added; the name and the attributes
/// are kept until ``end(at:)`` because the protocol lets callers read and change them.
/// After `end`, every call does nothing. Thread-safety: safe from any thread (a lock per span).
public final class SpillwaySpan: Tracing.Span, @unchecked Sendable {
    private struct State {
        var native: Resilience.Span
        var name: String
        var renamed = false
        var attributes = SpanAttributes()
        var ended = false
    }

    /// Guards `state`: a spin lock, because a span is almost never used by two threads at once,
    /// and because `attributes` is changed in place through `_modify` (with a closure-based lock,
    /// `span.attributes["k"] = v` would copy the whole dictionary on every set).
    private let locked = Atomic<Bool>(false)
    @exclusivity(unchecked) private var state: State
    /// The service context of this span: its parent's, with this span as the active one.
    public let context: ServiceContext
    /// Whether the span was sampled (fixed at start).
    private let sampled: Bool

    init(native: Resilience.Span, name: String, context: ServiceContext) {
        self.state = State(native: native, name: name)
        self.context = context
        self.sampled = native.isRecording
    }

    @inline(__always)
    private func lock() {
        var spins = 0
        // Pairs with the releasing store in unlock().
        while !locked.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            spins += 1
            if spins > 64 { sched_yield() }
        }
    }

    @inline(__always)
    private func unlock() { locked.store(false, ordering: .releasing) }  // pairs with the acquiring exchange in lock()

    @inline(__always)
    private func withState<Result>(_ body: (inout State) -> Result) -> Result {
        lock()
        defer { unlock() }
        return body(&state)
    }

    /// The span's ``Resilience/SpanContext`` (ids and flags).
    public var spanContext: Resilience.SpanContext { withState { $0.native.context } }

    /// The span's name. Setting it before `end` renames the span (OTLP receivers see the last name).
    public var operationName: String {
        get { withState { $0.name } }
        set {
            withState {
                guard !$0.ended else { return }
                $0.name = newValue
                $0.renamed = true
            }
        }
    }

    /// The attributes set so far; encoded into the span at `end`. Changes after `end` are ignored.
    public var attributes: SpanAttributes {
        get { withState { $0.attributes } }
        set { withState { if !$0.ended { $0.attributes = newValue } } }
        _modify {
            lock()
            defer { unlock() }
            // The dictionary made here, specialized in this module: `reserveCapacity` runs
            // swift-distributed-tracing's unspecialized code, a generic-metadata look-up per span.
            if state.attributes.isEmpty { state.attributes = SpanAttributes([String: SpanAttribute](minimumCapacity: 8)) }
            yield &state.attributes
        }
    }

    /// Whether the span was sampled and has not ended.
    public var isRecording: Bool { sampled && withState { !$0.ended } }

    /// Sets the status (last call wins); a message is kept with `.error` only.
    public func setStatus(_ status: Tracing.SpanStatus) {
        guard sampled else { return }
        withState { state in
            switch status.code {
            case .ok: state.native.setStatus(.ok)
            case .error: state.native.setStatus(.error(status.message ?? ""))
            }
        }
    }

    /// Adds an event, encoded at once (past the event limit it is counted as dropped).
    public func addEvent(_ event: SpanEvent) {
        guard sampled else { return }
        withState { state in
            state.native.addEvent(event.name, at: event.nanosecondsSinceEpoch) { writer in
                event.attributes.forEach { key, value in writer.set(key, attribute: value) }
            }
        }
    }

    /// Adds an `exception` event (`exception.type`, `exception.message` and `attributes`) and sets
    /// the status to error, as the OTel tracing API's `RecordException` with a status does.
    public func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant)
    {
        guard sampled else { return }
        let time = instant().nanosecondsSinceEpoch
        let type = ExceptionAttributes.type(of: error)
        let message = ExceptionAttributes.message(of: error)
        withState { state in
            state.native.addEvent("exception", at: time) { writer in
                writer.set("exception.type", type)
                writer.set("exception.message", message)
                attributes.forEach { key, value in writer.set(key, attribute: value) }
            }
        }
    }

    /// Adds a link to the span in `link.context`; a context without a Spillway span is ignored.
    public func addLink(_ link: SpanLink) {
        guard sampled, let linked = link.context.spillwaySpanContext else { return }
        withState { state in
            state.native.addLink(linked) { writer in link.attributes.forEach { key, value in writer.set(key, attribute: value) } }
        }
    }

    /// Ends the span at `instant` and hands it to the pipeline; later calls do nothing.
    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let time = instant().nanosecondsSinceEpoch
        withState { state in
            guard !state.ended else { return }
            state.ended = true
            guard sampled else { return }
            let attributes = state.attributes
            state.native.setAttributes { writer in attributes.forEach { key, value in writer.set(key, attribute: value) } }
            if state.renamed { state.native.rename(state.name) }
            state.native.end(at: time)
        }
    }
}

extension AttributeWriter {
    /// Sets a swift-distributed-tracing attribute.
    mutating func set(_ key: String, attribute: SpanAttribute) {
        switch attribute {
        case .int32(let v): set(key, Int(v))
        case .int64(let v): set(key, Int(truncatingIfNeeded: v))  // the int path, not the general AttributeValue one
        case .int32Array(let v): set(key, .array(v.map { .int(Int64($0)) }))
        case .int64Array(let v): set(key, .array(v.map { .int($0) }))
        case .double(let v): set(key, v)
        case .doubleArray(let v): set(key, v)
        case .bool(let v): set(key, v)
        case .boolArray(let v): set(key, v)
        case .string(let v): set(key, v)
        case .stringArray(let v): set(key, v)
        case .stringConvertible(let v): set(key, v.description)
        case .stringConvertibleArray(let v):
            // swift-distributed-tracing turns `[Int]` into string-convertibles; keep them integers.
            if let ints = v as? [Int] { set(key, ints) } else { set(key, v.map(\.description)) }
        default: set(key, "\(attribute)")
        }
    }
}
