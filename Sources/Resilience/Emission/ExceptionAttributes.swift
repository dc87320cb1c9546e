import Synchronization

#if canImport(Runtime)
    import Runtime
#endif

/// The `exception.*` attributes that an `Error` derives (OpenTelemetry semantic conventions
/// for exceptions, and the Logs API "Emit … exception"), as log records and span events use them.
public enum ExceptionAttributes {
    /// `exception.type`: the error's fully qualified type name (`Module.Type`), without the
    /// `(unknown context at $…)` parts that types declared inside functions carry.
    public static func type(of error: any Error) -> String {
        let type = Swift.type(of: error)
        // Demangling a type name takes microseconds; each error type is named once.
        if let known = typeNames.withLock({ $0[ObjectIdentifier(type)] }) { return known }
        let name = qualifiedName(type)
        typeNames.withLock { names in if names.count < 4096 { names[ObjectIdentifier(type)] = name } }
        return name
    }

    private static let typeNames = Mutex<[ObjectIdentifier: String]>([:])

    private static func qualifiedName(_ type: any Any.Type) -> String {
        let name = String(reflecting: type)
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

    #if canImport(Runtime)
        /// The process's images, read once from `/proc/self/maps`: symbolication then reads each
        /// image's symbol table, not the map, per call. Images loaded later are read again.
        private static let images = Mutex<ImageMap?>(nil)
    #endif

    /// `exception.stacktrace`: the caller's stack, symbolicated by function name (from the ELF
    /// symbol tables; no DWARF source lines, which cost hundreds of milliseconds in large
    /// binaries), one frame per line, without Spillway's own frames. Only called at or above
    /// the threshold; the benchmarks measure it.
    @inline(never)
    static func stackTrace() -> String {
        #if canImport(Runtime)
            let map = images.withLock { cached in
                if let cached { return cached }
                let captured = ImageMap.capture()
                cached = captured
                return captured
            }
            guard let captured = try? Backtrace.capture(limit: 48, images: map),
                let symbolicated = captured.symbolicated(with: map, options: [])
            else { return "" }
            var lines: [String] = []
            var skipping = true
            for frame in symbolicated.frames {
                let text = "\(frame)"
                // Frames above the caller are this file's and TelemetryLogger's; they all precede it.
                if skipping,
                    text.contains("ExceptionAttributes") || text.contains("TelemetryLogger")
                        || text.contains("Resilience.") && text.contains("emit")
                {
                    continue
                }
                skipping = false
                lines.append(text)
            }
            return lines.joined(separator: "\n")
        #else
            return ""  // no backtrace API on this platform
        #endif
    }
}
