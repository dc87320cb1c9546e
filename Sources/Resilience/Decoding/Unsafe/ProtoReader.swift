/// Reads protobuf wire format from bytes that outlive the reader (a `withUnsafeBytes` scope).
/// Every read is bounds-checked; malformed input throws ``ProtoDecodingError``, never traps.
struct ProtoReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int
    private let end: Int

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.offset = 0
        self.end = bytes.count
    }

    private init(_ bytes: UnsafeRawBufferPointer, offset: Int, end: Int) {
        self.bytes = bytes
        self.offset = offset
        self.end = end
    }

    var isAtEnd: Bool { offset >= end }

    /// The next field's number and wire type, or `nil` at the end.
    mutating func nextField() throws(ProtoDecodingError) -> (number: Int, wire: UInt8)? {
        guard offset < end else { return nil }
        let key = try varint()
        let number = Int(truncatingIfNeeded: key >> 3)
        guard number > 0 else { throw ProtoDecodingError("field number 0 at offset \(offset)") }
        return (number, UInt8(key & 7))
    }

    mutating func varint() throws(ProtoDecodingError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw ProtoDecodingError("truncated varint") }
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 { throw ProtoDecodingError("varint overflow") }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { throw ProtoDecodingError("varint too long") }
        }
    }

    mutating func fixed64() throws(ProtoDecodingError) -> UInt64 {
        guard end - offset >= 8 else { throw ProtoDecodingError("truncated fixed64") }
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        offset += 8
        return UInt64(littleEndian: v)
    }

    mutating func fixed32() throws(ProtoDecodingError) -> UInt32 {
        guard end - offset >= 4 else { throw ProtoDecodingError("truncated fixed32") }
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        offset += 4
        return UInt32(littleEndian: v)
    }

    /// A reader over the next length-delimited field's content.
    mutating func message() throws(ProtoDecodingError) -> ProtoReader {
        let length = try varint()
        guard length <= UInt64(end - offset) else { throw ProtoDecodingError("length \(length) past the end") }
        let sub = ProtoReader(bytes, offset: offset, end: offset + Int(length))
        offset += Int(length)
        return sub
    }

    mutating func byteArray() throws(ProtoDecodingError) -> [UInt8] {
        let sub = try message()
        return Array(UnsafeRawBufferPointer(rebasing: bytes[sub.offset..<sub.end]))
    }

    mutating func string() throws(ProtoDecodingError) -> String {
        let sub = try message()
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[sub.offset..<sub.end]), as: UTF8.self)
    }

    /// A 16-byte id as (high, low), big-endian; any other length is an error unless empty.
    mutating func id128() throws(ProtoDecodingError) -> (UInt64, UInt64) {
        let sub = try message()
        if sub.end == sub.offset { return (0, 0) }
        guard sub.end - sub.offset == 16 else { throw ProtoDecodingError("trace id of \(sub.end - sub.offset) bytes") }
        return (
            UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: sub.offset, as: UInt64.self)),
            UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: sub.offset + 8, as: UInt64.self))
        )
    }

    /// An 8-byte id, big-endian; any other length is an error unless empty.
    mutating func id64() throws(ProtoDecodingError) -> UInt64 {
        let sub = try message()
        if sub.end == sub.offset { return 0 }
        guard sub.end - sub.offset == 8 else { throw ProtoDecodingError("span id of \(sub.end - sub.offset) bytes") }
        return UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: sub.offset, as: UInt64.self))
    }

    /// Hands the next length-delimited field's content to `body` (which must not let it escape).
    mutating func withBytesField<R>(_ body: (UnsafeRawBufferPointer) -> R) throws(ProtoDecodingError) -> R {
        let sub = try message()
        return body(UnsafeRawBufferPointer(rebasing: bytes[sub.offset..<sub.end]))
    }

    /// Hands the bytes from `start` to the current offset to `body`.
    func withBytes<R>(from start: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        body(UnsafeRawBufferPointer(rebasing: bytes[start..<offset]))
    }

    /// Whether the next length-delimited field's content equals `expected` (consumes it).
    mutating func bytesEqual(_ expected: UnsafeRawBufferPointer) throws(ProtoDecodingError) -> Bool {
        let sub = try message()
        guard sub.end - sub.offset == expected.count else { return false }
        return memcmp(bytes.baseAddress! + sub.offset, expected.baseAddress!, expected.count) == 0
    }

    mutating func skip(_ wire: UInt8) throws(ProtoDecodingError) {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try fixed64()
        case 2: _ = try message()
        case 5: _ = try fixed32()
        default: throw ProtoDecodingError("unknown wire type \(wire)")
        }
    }
}

/// Bytes that are not the protobuf message they should be.
public struct ProtoDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    init(_ message: String) { self.message = message }
    public var description: String { "malformed protobuf: \(message)" }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
