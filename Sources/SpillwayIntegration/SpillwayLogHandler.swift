public import Logging
public import Resilience
import ServiceContextModule

/// A swift-log `LogHandler` that writes log records into a ``TelemetryPipeline``.
///
/// ```swift
/// LoggingSystem.bootstrap { label in SpillwayLogHandler(pipeline: pipeline, label: label) }
/// ```
///
/// - The record's instrumentation scope is the logger's label; the message is the body.
/// - Metadata (the handler's, the metadata provider's and the call's, later winning) become
///   attributes: strings and string-convertibles as strings, arrays and dictionaries as OTLP
///   arrays and maps. `code.function.name`, `code.file.path` and `code.line.number` and
///   `log.source` (the module) are added.
/// - Trace correlation: the trace and span ids of the task's active span
///   (`ServiceContext.current`, set by ``SpillwayTracer`` and any `withSpan`).
/// - `LogEvent.error` (swift-log 1.16's `logger.error("…", error: e)`) is recorded as an exception:
///   `exception.type` and `exception.message`. Stack traces follow
///   ``PipelineConfiguration/exceptionStackTraces``; when that is not set this bridge captures none.
/// - Levels map to OTel severities: trace 1, debug 5, info 9, notice 10 (INFO2), warning 13,
///   error 17, critical 21.
///
/// The handler encodes the record on the caller's thread; only the metadata dictionary merge
/// and the message's string interpolation allocate, as with any swift-log handler.
/// Thread-safety: a value type, as swift-log requires; safe from any thread.
public struct SpillwayLogHandler: LogHandler {
    private let logger: TelemetryLogger
    /// Metadata added to every record of this handler.
    public var metadata: Logger.Metadata = [:]
    /// The minimum level. - Default value: `.info`.
    public var logLevel: Logger.Level
    /// Metadata computed per record (e.g. from the task's context).
    public var metadataProvider: Logger.MetadataProvider?

    /// - Parameters:
    ///   - pipeline: Where records go.
    ///   - label: The logger's label; becomes the instrumentation scope.
    ///   - logLevel: - Default value: `.info`.
    ///   - metadataProvider: - Default value: `LoggingSystem.metadataProvider`.
    public init(
        pipeline: TelemetryPipeline, label: String, logLevel: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider
    ) {
        self.logger = pipeline.logger(scope: label).withUnsetStackTraceRule(.never)
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
    }

    /// The handler's metadata value for `key`.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one log record into the pipeline (see the type's documentation for the mapping).
    ///
    /// The three metadata sources are written in turn, each key once (the call's win over the
    /// provider's, which win over the handler's), without merging them into a new dictionary:
    /// a merge hashed every key and allocated (callgrind: 2,500 instructions of 8,500 per record).
    public func log(event: LogEvent) {
        let call = event.metadata ?? [:]
        let provided = metadataProvider?.get() ?? [:]
        let own = metadata
        let context = ServiceContext.current?.spillwaySpanContext
        let source = event.source
        logger.emit(
            severity: Self.severity(event.level), body: event.message.description, context: context, error: event.error
        ) { writer in
            for (key, value) in call { Self.set(key, value, into: &writer) }
            for (key, value) in provided where call.isEmpty || call[key] == nil { Self.set(key, value, into: &writer) }
            for (key, value) in own where (call.isEmpty || call[key] == nil) && (provided.isEmpty || provided[key] == nil) {
                Self.set(key, value, into: &writer)
            }
            writer.set("code.function.name", event.function)
            writer.set("code.file.path", event.file)
            writer.set("code.line.number", Int(event.line))
            writer.set("log.source", source)
        }
    }

    /// One metadata value as an attribute: strings straight in, the rest through ``attribute(_:)``.
    @inline(__always)
    private static func set(_ key: String, _ value: Logger.Metadata.Value, into writer: inout AttributeWriter) {
        switch value {
        case .string(let s): writer.set(key, s)
        case .stringConvertible(let c): writer.set(key, c.description)
        default: writer.set(key, attribute(value))
        }
    }

    static func severity(_ level: Logger.Level) -> Severity {
        switch level {
        case .trace: return .trace
        case .debug: return .debug
        case .info: return .info
        case .notice: return .info2
        case .warning: return .warn
        case .error: return .error
        case .critical: return .fatal
        }
    }

    static func attribute(_ value: Logger.Metadata.Value) -> AttributeValue {
        switch value {
        case .string(let s): return .string(s)
        case .stringConvertible(let c): return .string(c.description)
        case .array(let a): return .array(a.map(attribute))
        case .dictionary(let d): return .map(d.map { ($0.key, attribute($0.value)) }.sorted { $0.0 < $1.0 })
        }
    }
}
