/// A 16-byte trace identifier. All zero is invalid.
public struct TraceID: Sendable, Hashable, CustomStringConvertible {
    /// The high and low 8 bytes, big-endian as on the wire (byte 0 is the top byte of `high`).
    public var high: UInt64
    /// The low 8 bytes, big-endian as on the wire.
    public var low: UInt64

    /// An id from its two halves.
    @inlinable
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses 32 lowercase or uppercase hex digits; `nil` otherwise.
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 32, let high = UInt64(hex.prefix(16), radix: 16),
            let low = UInt64(hex.suffix(16), radix: 16)
        else { return nil }
        self.init(high: high, low: low)
    }

    /// Whether the id is not all zeros.
    public var isValid: Bool { high != 0 || low != 0 }
    /// 32 lowercase hex digits.
    public var description: String { hex16(high) + hex16(low) }
    /// The 16 bytes as on the wire.
    public var bytes: [UInt8] { bigEndianBytes(high) + bigEndianBytes(low) }
}

/// An 8-byte span identifier. All zero is invalid.
public struct SpanID: Sendable, Hashable, CustomStringConvertible {
    /// The 8 bytes, big-endian as on the wire.
    public var value: UInt64

    /// An id from its 8 bytes as a big-endian integer.
    @inlinable
    public init(_ value: UInt64) { self.value = value }

    /// Parses 16 hex digits; `nil` otherwise.
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 16, let value = UInt64(hex, radix: 16) else { return nil }
        self.value = value
    }

    /// Whether the id is not all zeros.
    public var isValid: Bool { value != 0 }
    /// 16 lowercase hex digits.
    public var description: String { hex16(value) }
    /// The 8 bytes as on the wire.
    public var bytes: [UInt8] { bigEndianBytes(value) }
}

/// What identifies a span to its children and links: W3C trace context.
public struct SpanContext: Sendable, Hashable {
    /// The trace this span belongs to.
    public var traceID: TraceID
    /// The span itself.
    public var spanID: SpanID
    /// W3C trace flags; bit 0 is "sampled".
    public var traceFlags: UInt8
    /// W3C `tracestate`, as received.
    public var traceState: String
    /// Whether the context came from another process.
    public var isRemote: Bool

    /// A context; `traceFlags` defaults to sampled.
    @inlinable
    public init(traceID: TraceID, spanID: SpanID, traceFlags: UInt8 = 1, traceState: String = "", isRemote: Bool = false) {
        self.traceID = traceID
        self.spanID = spanID
        self.traceFlags = traceFlags
        self.traceState = traceState
        self.isRemote = isRemote
    }

    /// The all-zero context.
    public static let invalid = SpanContext(traceID: TraceID(high: 0, low: 0), spanID: SpanID(0), traceFlags: 0)

    /// Whether both ids are non-zero.
    public var isValid: Bool { traceID.isValid && spanID.isValid }
}

/// The role of a span (OTLP `Span.SpanKind`).
public enum SpanKind: UInt8, Sendable, Hashable {
    /// An operation inside the application (the default).
    case `internal` = 1
    /// Handling a synchronous request from a remote client.
    case server = 2
    /// A synchronous request to a remote service.
    case client = 3
    /// Sending a message that a consumer handles later.
    case producer = 4
    /// Handling a message sent by a producer.
    case consumer = 5
}

/// The outcome of a span (OTLP `Status`).
public struct SpanStatus: Sendable, Hashable {
    /// OTLP `Status.StatusCode`.
    public enum Code: UInt8, Sendable, Hashable {
        /// Not set (the default): the collector's or back end's rules decide.
        case unset = 0
        /// Explicitly successful.
        case ok = 1
        /// Failed.
        case error = 2
    }

    /// The outcome.
    public var code: Code
    /// A developer-facing message; only sent with `.error`.
    public var message: String

    public init(code: Code, message: String = "") {
        self.code = code
        self.message = message
    }

    public static let ok = SpanStatus(code: .ok)
    public static func error(_ message: String = "") -> SpanStatus { SpanStatus(code: .error, message: message) }
}

@inline(__always)
func hex16(_ value: UInt64) -> String {
    let digits = Array("0123456789abcdef".utf8)
    return String(unsafeUninitializedCapacity: 16) { buffer in
        for i in 0..<16 { buffer[i] = digits[Int((value >> UInt64(60 - 4 * i)) & 0xF)] }
        return 16
    }
}

func bigEndianBytes(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64(56 - 8 * $0)) }
}
