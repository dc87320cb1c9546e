/// Limits on attributes, per the OpenTelemetry SDK defaults.
public struct AttributeLimits: Sendable, Hashable {
    /// The most attributes one span, event, link or log record keeps; the rest are counted as dropped.
    /// - Default value: 128.
    /// - Environment variable: `OTEL_ATTRIBUTE_COUNT_LIMIT` (and the `OTEL_SPAN_`/`OTEL_LOGRECORD_` variants).
    public var countLimit: Int
    /// The longest string or byte value kept, in bytes; longer values are cut. `nil` is unlimited.
    /// - Default value: unlimited.
    /// - Environment variable: `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`.
    public var valueLengthLimit: Int?
    /// The most events a span keeps. - Default value: 128 (`OTEL_SPAN_EVENT_COUNT_LIMIT`).
    public var eventCountLimit: Int
    /// The most links a span keeps. - Default value: 128 (`OTEL_SPAN_LINK_COUNT_LIMIT`).
    public var linkCountLimit: Int

    public init(countLimit: Int = 128, valueLengthLimit: Int? = nil, eventCountLimit: Int = 128, linkCountLimit: Int = 128) {
        self.countLimit = countLimit
        self.valueLengthLimit = valueLengthLimit
        self.eventCountLimit = eventCountLimit
        self.linkCountLimit = linkCountLimit
    }
}
