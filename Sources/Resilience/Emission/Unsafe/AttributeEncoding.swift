// OTLP common.proto, hand-encoded:
//   KeyValue     { string key = 1; AnyValue value = 2; }
//   AnyValue     { string string_value = 1; bool bool_value = 2; int64 int_value = 3;
//                  double double_value = 4; ArrayValue array_value = 5;
//                  KeyValueList kvlist_value = 6; bytes bytes_value = 7; }
//   ArrayValue   { repeated AnyValue values = 1; }
//   KeyValueList { repeated KeyValue values = 1; }

enum AnyValueField {
    static let string = 1, bool = 2, int = 3, double = 4, array = 5, kvlist = 6, bytes = 7
}

extension ScratchBuffer {
    /// One `KeyValue` with a string value as field `field`.
    @inline(__always)
    func putAttribute(field: Int, key: String, string value: String, valueLimit: Int) {
        withUTF8(key, limit: .max) { keyBytes, keyCount in
            withUTF8(value, limit: valueLimit) { valueBytes, valueCount in
                putKeyValue(field: field, key: keyBytes, keyCount, valueSize: lengthFieldSize(field: AnyValueField.string, valueCount)) {
                    $0.putTag(AnyValueField.string, .lengthDelimited)
                    $0.putVarint(UInt64(valueCount))
                    $0.putRaw(valueBytes, valueCount)
                }
            }
        }
    }

    /// One `KeyValue` (its length, the key, and an `AnyValue` of `valueSize` bytes that `value`
    /// writes), all through one cursor.
    @inline(__always)
    private func putKeyValue(
        field: Int, key keyBytes: UnsafeRawPointer, _ keyCount: Int, valueSize: Int, _ value: (inout ByteCursor) -> Void
    ) {
        let keyValue = lengthFieldSize(field: 1, keyCount) + lengthFieldSize(field: 2, valueSize)
        withCursor(reserving: keyValue + 16) { cursor in
            cursor.putTag(field, .lengthDelimited)
            cursor.putVarint(UInt64(keyValue))
            cursor.putTag(1, .lengthDelimited)
            cursor.putVarint(UInt64(keyCount))
            cursor.putRaw(keyBytes, keyCount)
            cursor.putTag(2, .lengthDelimited)
            cursor.putVarint(UInt64(valueSize))
            value(&cursor)
        }
    }

    /// The start of a `KeyValue` in field `field`: its length, the key, and the header of a value
    /// of `valueSize` bytes; the caller writes the `AnyValue` content next.
    @inline(__always)
    private func putKeyValueHeader(field: Int, key keyBytes: UnsafeRawPointer, _ keyCount: Int, valueSize: Int) {
        putKeyValue(field: field, key: keyBytes, keyCount, valueSize: valueSize) { _ in }
    }

    /// One `KeyValue` with an int value.
    @inline(__always)
    func putAttribute(field: Int, key: String, int value: Int64) {
        withUTF8(key, limit: .max) { keyBytes, keyCount in
            putKeyValue(field: field, key: keyBytes, keyCount, valueSize: 1 + varintSize(UInt64(bitPattern: value))) {
                $0.putTag(AnyValueField.int, .varint)
                $0.putVarint(UInt64(bitPattern: value))
            }
        }
    }

    /// One `KeyValue` with a bool value.
    @inline(__always)
    func putAttribute(field: Int, key: String, bool value: Bool) {
        withUTF8(key, limit: .max) { keyBytes, keyCount in
            putKeyValue(field: field, key: keyBytes, keyCount, valueSize: 2) {
                $0.putTag(AnyValueField.bool, .varint)
                $0.put(value ? 1 : 0)
            }
        }
    }

    /// One `KeyValue` with a double value.
    @inline(__always)
    func putAttribute(field: Int, key: String, double value: Double) {
        withUTF8(key, limit: .max) { keyBytes, keyCount in
            putKeyValue(field: field, key: keyBytes, keyCount, valueSize: 9) {
                $0.putTag(AnyValueField.double, .fixed64)
                $0.putFixed64(value.bitPattern)
            }
        }
    }

    /// One `KeyValue` with any value.
    func putAttribute(field: Int, key: String, value: AttributeValue, valueLimit: Int) {
        switch value {
        case .string(let s): putAttribute(field: field, key: key, string: s, valueLimit: valueLimit)
        case .int(let i): putAttribute(field: field, key: key, int: i)
        case .bool(let b): putAttribute(field: field, key: key, bool: b)
        case .double(let d): putAttribute(field: field, key: key, double: d)
        default:
            withUTF8(key, limit: .max) { keyBytes, keyCount in
                putKeyValueHeader(field: field, key: keyBytes, keyCount, valueSize: anyValueSize(value, limit: valueLimit))
                putAnyValueContent(value, limit: valueLimit)
            }
        }
    }

    /// `value` as an `AnyValue` message in field `field`; `size` from ``anyValueSize(_:limit:)``.
    func putAnyValueField(_ field: Int, _ value: AttributeValue, size: Int, limit: Int) {
        reserve(size + 16)
        putTag(field, .lengthDelimited)
        putVarint(UInt64(size))
        putAnyValueContent(value, limit: limit)
    }

    /// The content of an `AnyValue` (its one field) for a caller that wrote the message's header
    /// and reserved room for its size.
    private func putAnyValueContent(_ value: AttributeValue, limit: Int) {
        switch value {
        case .string(let s):
            putStringField(AnyValueField.string, s, limit: limit)
        case .bool(let b):
            putTag(AnyValueField.bool, .varint)
            put(b ? 1 : 0)
        case .int(let i):
            putTag(AnyValueField.int, .varint)
            putVarint(UInt64(bitPattern: i))
        case .double(let d):
            putTag(AnyValueField.double, .fixed64)
            putFixed64(d.bitPattern)
        case .bytes(let bytes):
            bytes.withUnsafeBytes {
                putBytesField(AnyValueField.bytes, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, min(bytes.count, limit))
            }
        case .array(let values):
            let inner = values.reduce(0) { $0 + lengthFieldSize(field: 1, anyValueSize($1, limit: limit)) }
            reserve(inner + 16)
            putTag(AnyValueField.array, .lengthDelimited)
            putVarint(UInt64(inner))
            for element in values { putAnyValueField(1, element, size: anyValueSize(element, limit: limit), limit: limit) }
        case .map(let pairs):
            let inner = pairs.reduce(0) { $0 + lengthFieldSize(field: 1, keyValueSize($1.key, $1.value, limit: limit)) }
            reserve(inner + 16)
            putTag(AnyValueField.kvlist, .lengthDelimited)
            putVarint(UInt64(inner))
            for pair in pairs {
                let any = anyValueSize(pair.value, limit: limit)
                reserve(16)
                putTag(1, .lengthDelimited)
                putVarint(UInt64(keyValueSize(pair.key, pair.value, limit: limit)))
                putStringField(1, pair.key)
                putAnyValueField(2, pair.value, size: any, limit: limit)
            }
        }
    }
}

/// The encoded size of the content of an `AnyValue` holding `value`.
func anyValueSize(_ value: AttributeValue, limit: Int) -> Int {
    switch value {
    case .string(let s): return lengthFieldSize(field: 1, withUTF8(s, limit: limit) { $1 })
    case .bool: return 2
    case .int(let i): return 1 + varintSize(UInt64(bitPattern: i))
    case .double: return 9
    case .bytes(let b): return lengthFieldSize(field: 7, min(b.count, limit))
    case .array(let values):
        return lengthFieldSize(field: 5, values.reduce(0) { $0 + lengthFieldSize(field: 1, anyValueSize($1, limit: limit)) })
    case .map(let pairs):
        return lengthFieldSize(field: 6, pairs.reduce(0) { $0 + lengthFieldSize(field: 1, keyValueSize($1.key, $1.value, limit: limit)) })
    }
}

/// The encoded size of the content of a `KeyValue`.
func keyValueSize(_ key: String, _ value: AttributeValue, limit: Int) -> Int {
    lengthFieldSize(field: 1, key.utf8.count) + lengthFieldSize(field: 2, anyValueSize(value, limit: limit))
}
