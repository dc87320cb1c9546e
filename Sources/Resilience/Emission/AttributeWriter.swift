/// Adds attributes to the record being built: a span event, a link or a log record.
///
/// Handed to the `attributes:` closures of ``Span/addEvent(_:at:attributes:)``,
/// ``Span/addLink(_:attributes:)`` and ``TelemetryLogger/emit(severity:body:eventName:context:timestamp:attributes:)``.
/// Each value is encoded at once into the record's bytes; nothing is allocated.
///
/// Limits: past ``AttributeLimits/countLimit`` attributes, further ones are counted in the
/// record's `dropped_attributes_count` instead of sent; strings and bytes are cut to
/// ``AttributeLimits/valueLengthLimit`` bytes (on a UTF-8 boundary).
/// Keys are sent as set; setting a key twice sends it twice (the OTel API asks callers not to).
///
/// The writer cannot be copied (`~Copyable`): it is lent to the closure for the record being built
/// and cannot outlive it, so it names the record's buffer without retaining it (a retain and a
/// release a record, ~20 ns of a log record's ~100).
public struct AttributeWriter: ~Copyable {
    /// The record's buffer, kept alive by the emitting call for as long as the writer exists.
    let unmanagedBuffer: Unmanaged<ScratchBuffer>
    /// The buffer at +0 (no retain, no release).
    @inline(__always) private func withBuffer(_ body: (ScratchBuffer) -> Void) { unmanagedBuffer._withUnsafeGuaranteedRef(body) }
    let field: Int
    let countLimit: Int
    let valueLimit: Int
    var count = 0
    var dropped: UInt32 = 0
    /// Set when the record carries an error: then the keys `exception.type`, `.message` and
    /// `.stacktrace` set by the caller are noted (bits 0, 1, 2), so that derived values don't repeat them.
    var watchesExceptionKeys = false
    var exceptionKeysSet: UInt8 = 0

    @inline(never)
    private mutating func noteExceptionKey(_ key: String) {
        switch key {
        case "exception.type": exceptionKeysSet |= 1
        case "exception.message": exceptionKeysSet |= 2
        case "exception.stacktrace": exceptionKeysSet |= 4
        default: break
        }
    }

    init(buffer: ScratchBuffer, field: Int, limits: AttributeLimits) {
        self.init(buffer: buffer, field: field, countLimit: limits.countLimit, valueLimit: limits.valueLengthLimit ?? .max)
    }

    init(buffer: ScratchBuffer, field: Int, countLimit: Int, valueLimit: Int, count: Int = 0, dropped: UInt32 = 0) {
        self.unmanagedBuffer = Unmanaged.passUnretained(buffer)
        self.field = field
        self.countLimit = countLimit
        self.valueLimit = valueLimit
        self.count = count
        self.dropped = dropped
    }

    @inline(__always)
    private mutating func admit(_ key: String) -> Bool {
        if watchesExceptionKeys { noteExceptionKey(key) }
        if count < countLimit {
            count += 1
            return true
        }
        dropped &+= 1
        return false
    }

    /// Sets a string attribute.
    public mutating func set(_ key: String, _ value: String) {
        if admit(key) { withBuffer { $0.putAttribute(field: field, key: key, string: value, valueLimit: valueLimit) } }
    }

    /// Sets an integer attribute.
    public mutating func set(_ key: String, _ value: Int) {
        if admit(key) { withBuffer { $0.putAttribute(field: field, key: key, int: Int64(value)) } }
    }

    /// Sets a boolean attribute.
    public mutating func set(_ key: String, _ value: Bool) {
        if admit(key) { withBuffer { $0.putAttribute(field: field, key: key, bool: value) } }
    }

    /// Sets a floating-point attribute.
    public mutating func set(_ key: String, _ value: Double) {
        if admit(key) { withBuffer { $0.putAttribute(field: field, key: key, double: value) } }
    }

    /// Sets an attribute of any type: bytes, arrays, or a primitive.
    public mutating func set(_ key: String, _ value: AttributeValue) {
        if admit(key) { withBuffer { $0.putAttribute(field: field, key: key, value: value, valueLimit: valueLimit) } }
    }

    /// Sets a byte-array attribute.
    public mutating func set(_ key: String, bytes: [UInt8]) { set(key, .bytes(bytes)) }
    /// Sets a string-array attribute.
    public mutating func set(_ key: String, _ values: [String]) { set(key, .array(values.map { .string($0) })) }
    /// Sets an integer-array attribute.
    public mutating func set(_ key: String, _ values: [Int]) { set(key, .array(values.map { .int(Int64($0)) })) }
    /// Sets a floating-point-array attribute.
    public mutating func set(_ key: String, _ values: [Double]) { set(key, .array(values.map { .double($0) })) }
    /// Sets a boolean-array attribute.
    public mutating func set(_ key: String, _ values: [Bool]) { set(key, .array(values.map { .bool($0) })) }
}
