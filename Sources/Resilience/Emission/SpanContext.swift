/// A 16-byte trace identifier. All zero is invalid.
public struct TraceID: Sendable, Hashable, CustomStringConvertible {
    /// The high and low 8 bytes, big-endian as on the wire (byte 0 is the top byte of `high`).
    public var high: UInt64
    public var low: UInt64

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

    public init(_ value: UInt64) { self.value = value }

    /// Parses 16 hex digits; `nil` otherwise.
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 16, let value = UInt64(hex, radix: 16) else { return nil }
        self.value = value
    }

    public var isValid: Bool { value != 0 }
    /// 16 lowercase hex digits.
    public var description: String { hex16(value) }
    /// The 8 bytes as on the wire.
    public var bytes: [UInt8] { bigEndianBytes(value) }
}

/// What identifies a span to its children and links: W3C trace context.
public struct SpanContext: Sendable, Hashable {
    public var traceID: TraceID
    public var spanID: SpanID
    /// W3C trace flags; bit 0 is "sampled".
    public var traceFlags: UInt8
    /// W3C `tracestate`, as received.
    public var traceState: String
    /// Whether the context came from another process.
    public var isRemote: Bool

    public init(traceID: TraceID, spanID: SpanID, traceFlags: UInt8 = 1, traceState: String = "", isRemote: Bool = false) {
        self.traceID = traceID
        self.spanID = spanID
        self.traceFlags = traceFlags
        self.traceState = traceState
        self.isRemote = isRemote
    }

    /// The all-zero context.
    public static let invalid = SpanContext(traceID: TraceID(high: 0, low: 0), spanID: SpanID(0), traceFlags: 0)

    public var isValid: Bool { traceID.isValid && spanID.isValid }
}

/// The role of a span (OTLP `Span.SpanKind`).
public enum SpanKind: UInt8, Sendable, Hashable {
    case `internal` = 1
    case server = 2
    case client = 3
    case producer = 4
    case consumer = 5
}

/// The outcome of a span (OTLP `Status`).
public struct SpanStatus: Sendable, Hashable {
    public enum Code: UInt8, Sendable, Hashable {
        case unset = 0
        case ok = 1
        case error = 2
    }

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
