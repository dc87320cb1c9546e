public import Instrumentation
public import Resilience
import ServiceContextModule

/// The ``Resilience/SpanContext`` of the active span, kept in a `ServiceContext`.
enum SpillwaySpanContextKey: ServiceContextKey {
    typealias Value = Resilience.SpanContext
    static var nameOverride: String? { "spillway.span-context" }
}

extension ServiceContext {
    /// The Spillway span context this service context carries: that of the active span, or one
    /// extracted from `traceparent`. Set by ``SpillwayTracer``; read by ``SpillwayLogHandler`` to
    /// correlate log records with the active span.
    public var spillwaySpanContext: Resilience.SpanContext? {
        get { self[SpillwaySpanContextKey.self] }
        set { self[SpillwaySpanContextKey.self] = newValue }
    }
}

/// W3C Trace Context (`traceparent`, `tracestate`), version 00.
///
/// Parsing follows the recommendation's rules: lower-case hex, all-zero ids invalid, version
/// `ff` invalid, a higher version accepted by its first four fields. A `tracestate` longer than
/// 512 characters is dropped, as the recommendation allows.
public enum W3CTraceContext {
    /// `00-<trace id>-<span id>-<flags>`.
    public static func traceparent(_ context: Resilience.SpanContext) -> String {
        "00-\(context.traceID)-\(context.spanID)-" + String(context.traceFlags, radix: 16).leftPadded(to: 2)
    }

    /// The span context in `traceparent` (and `tracestate`), marked remote; `nil` when invalid.
    public static func parse(traceparent: String, tracestate: String? = nil) -> Resilience.SpanContext? {
        let utf8 = Array(traceparent.utf8)
        guard utf8.count >= 55 else { return nil }
        func isHex(_ range: Range<Int>) -> Bool {
            range.allSatisfy { (48...57).contains(utf8[$0]) || (97...102).contains(utf8[$0]) }
        }
        guard isHex(0..<2), utf8[2] == 45, isHex(3..<35), utf8[35] == 45, isHex(36..<52), utf8[52] == 45, isHex(53..<55) else { return nil }
        let version = String(decoding: utf8[0..<2], as: UTF8.self)
        guard version != "ff" else { return nil }
        if version == "00" { guard utf8.count == 55 else { return nil } } else if utf8.count > 55 && utf8[55] != 45 { return nil }
        guard let traceID = TraceID(hex: String(decoding: utf8[3..<35], as: UTF8.self)), traceID.isValid,
            let spanID = SpanID(hex: String(decoding: utf8[36..<52], as: UTF8.self)), spanID.isValid,
            let flags = UInt8(String(decoding: utf8[53..<55], as: UTF8.self), radix: 16)
        else { return nil }
        var state = tracestate ?? ""
        if state.utf8.count > 512 { state = "" }
        return Resilience.SpanContext(traceID: traceID, spanID: spanID, traceFlags: flags, traceState: state, isRemote: true)
    }
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
