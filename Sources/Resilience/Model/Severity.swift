/// The severity of a log record (OTLP `SeverityNumber`), with its short text.
///
/// The six ranges of the data model each have four steps: `.info` is 9, `.info2` 10 … `.info4` 12.
public struct Severity: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// 1 (TRACE) … 24 (FATAL4); 0 is unspecified.
    public var number: UInt8

    /// A severity; numbers above 24 are taken as 24.
    @inlinable
    public init(number: UInt8) { self.number = min(number, 24) }

    // Computed, not stored: a `static let` is reached through a lazy-initialisation check at every
    // use from another module (~12 instructions a log record).
    /// 0: not specified.
    @inlinable public static var unspecified: Severity { Severity(number: 0) }
    /// 1: TRACE.
    @inlinable public static var trace: Severity { Severity(number: 1) }
    /// 5: DEBUG.
    @inlinable public static var debug: Severity { Severity(number: 5) }
    /// 9: INFO.
    @inlinable public static var info: Severity { Severity(number: 9) }
    /// 10: INFO2.
    @inlinable public static var info2: Severity { Severity(number: 10) }
    /// 13: WARN.
    @inlinable public static var warn: Severity { Severity(number: 13) }
    /// 17: ERROR.
    @inlinable public static var error: Severity { Severity(number: 17) }
    /// 21: FATAL.
    @inlinable public static var fatal: Severity { Severity(number: 21) }

    /// `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`, with the step (`INFO2`) after the first;
    /// empty for 0.
    public var text: String { staticText.description }

    /// The text as a static string: the encoder copies its bytes with no `String` to make, retain or
    /// release (a lazily built table of strings cost ~50 instructions a log record).
    var staticText: StaticString {
        switch number {
        case 1: "TRACE"
        case 2: "TRACE2"
        case 3: "TRACE3"
        case 4: "TRACE4"
        case 5: "DEBUG"
        case 6: "DEBUG2"
        case 7: "DEBUG3"
        case 8: "DEBUG4"
        case 9: "INFO"
        case 10: "INFO2"
        case 11: "INFO3"
        case 12: "INFO4"
        case 13: "WARN"
        case 14: "WARN2"
        case 15: "WARN3"
        case 16: "WARN4"
        case 17: "ERROR"
        case 18: "ERROR2"
        case 19: "ERROR3"
        case 20: "ERROR4"
        case 21: "FATAL"
        case 22: "FATAL2"
        case 23: "FATAL3"
        case 24: "FATAL4"
        default: ""
        }
    }

    public var description: String { text }
    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.number < rhs.number }
}
