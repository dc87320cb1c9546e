/// The severity of a log record (OTLP `SeverityNumber`), with its short text.
///
/// The six ranges of the data model each have four steps: `.info` is 9, `.info2` 10 … `.info4` 12.
public struct Severity: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// 1 (TRACE) … 24 (FATAL4); 0 is unspecified.
    public var number: UInt8

    public init(number: UInt8) { self.number = min(number, 24) }

    public static let unspecified = Severity(number: 0)
    public static let trace = Severity(number: 1)
    public static let debug = Severity(number: 5)
    public static let info = Severity(number: 9)
    public static let info2 = Severity(number: 10)
    public static let warn = Severity(number: 13)
    public static let error = Severity(number: 17)
    public static let fatal = Severity(number: 21)

    /// `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`, with the step (`INFO2`) after the first.
    public var text: String { Severity.texts[Int(number)] }

    private static let texts: [String] =
        [""]
        + (0..<24).map { index in
            let names = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
            return index % 4 == 0 ? names[index / 4] : names[index / 4] + String(index % 4 + 1)
        }

    public var description: String { text }
    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.number < rhs.number }
}
