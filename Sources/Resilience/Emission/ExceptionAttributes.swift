import Runtime

/// The `exception.*` attributes that an `Error` derives (OpenTelemetry semantic conventions
/// for exceptions, and the Logs API "Emit … exception"), as log records and span events use them.
public enum ExceptionAttributes {
    /// `exception.type`: the error's fully qualified type name (`Module.Type`), without the
    /// `(unknown context at $…)` parts that types declared inside functions carry.
    public static func type(of error: any Error) -> String {
        let name = String(reflecting: Swift.type(of: error))
        guard name.contains("(unknown context at ") else { return name }
        return name.split(separator: ".", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("(unknown context at ") }.joined(separator: ".")
    }

    /// `exception.message`: what `String(describing:)` prints for the error.
    public static func message(of error: any Error) -> String { String(describing: error) }

    /// Whether a record of `severity` gets a stack trace, given the pipeline's setting
    /// (`configured`, encoded by ``StackTraceCapture/encode(_:)``) and the logger's own default
    /// for "not set" (`fallback`, encoded the same way; 0 there means `.error`).
    @inline(__always)
    static func capturesStackTrace(severity: Severity, configured: UInt8, fallback: UInt8) -> Bool {
        let rule = configured != 0 ? configured : fallback
        switch rule {
        case 0: return severity >= .error
        case 255: return false
        default: return severity.number &+ 1 >= rule
        }
    }

    /// `exception.stacktrace`: the caller's stack, symbolicated, one frame per line, without the
    /// frames of Spillway itself. Costs a few hundred microseconds; only called above the threshold.
    @inline(never)
    static func stackTrace() -> String {
        guard let captured = try? Backtrace.capture(), let symbolicated = captured.symbolicated() else { return "" }
        var lines: [String] = []
        var skipping = true
        for frame in symbolicated.frames {
            let text = "\(frame)"
            // Frames above the caller are this file's and TelemetryLogger's; they all precede it.
            if skipping, text.contains("ExceptionAttributes") || text.contains("TelemetryLogger") || text.contains("Resilience.") && text.contains("emit") {
                continue
            }
            skipping = false
            lines.append(text)
        }
        return lines.joined(separator: "\n")
    }
}
