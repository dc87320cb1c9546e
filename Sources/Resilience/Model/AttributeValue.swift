/// A value of an attribute or of a log record's body: the OTLP `AnyValue`.
///
/// Attribute values are the primitive types and homogeneous arrays of them; log bodies may
/// also be heterogeneous arrays and maps. Strings are always valid UTF-8: Swift repairs
/// ill-formed bytes to U+FFFD when a `String` is made, so nothing invalid reaches the wire.
public enum AttributeValue: Sendable, Hashable {
    /// A UTF-8 string (`string_value`).
    case string(String)
    /// A boolean (`bool_value`).
    case bool(Bool)
    /// A signed 64-bit integer (`int_value`).
    case int(Int64)
    /// A 64-bit float (`double_value`).
    case double(Double)
    /// Raw bytes (`bytes_value`).
    case bytes([UInt8])
    /// A list of values (`array_value`); attributes keep arrays homogeneous.
    case array([AttributeValue])
    /// Key-value pairs in order (OTLP `KeyValueList`); for log bodies.
    case map([(key: String, value: AttributeValue)])

    public static func == (lhs: AttributeValue, rhs: AttributeValue) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b || (a.isNaN && b.isNaN)
        case (.bytes(let a), .bytes(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.map(let a), .map(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .string(let v):
            hasher.combine(0)
            hasher.combine(v)
        case .bool(let v):
            hasher.combine(1)
            hasher.combine(v)
        case .int(let v):
            hasher.combine(2)
            hasher.combine(v)
        case .double(let v):
            hasher.combine(3)
            hasher.combine(v)
        case .bytes(let v):
            hasher.combine(4)
            hasher.combine(v)
        case .array(let v):
            hasher.combine(5)
            hasher.combine(v)
        case .map(let v):
            hasher.combine(6)
            for pair in v {
                hasher.combine(pair.key)
                hasher.combine(pair.value)
            }
        }
    }
}

extension AttributeValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension AttributeValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .string(let v): return "\"\(v)\""
        case .bool(let v): return "\(v)"
        case .int(let v): return "\(v)"
        case .double(let v): return "\(v)"
        case .bytes(let v): return "<\(v.count) bytes>"
        case .array(let v): return "[\(v.map(\.description).joined(separator: ", "))]"
        case .map(let v): return "{\(v.map { "\($0.key): \($0.value)" }.joined(separator: ", "))}"
        }
    }
}
