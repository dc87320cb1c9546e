/// Protocol buffers wire format: the pieces both the encoders (``ScratchBuffer``) and the
/// decoders (``ProtoReader``) use.
enum WireType: UInt8 {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case fixed32 = 5
}

@inline(__always)
func varintSize(_ value: UInt64) -> Int {
    // Lengths and small values are under 128 nearly always: a compare instead of a bit scan and a
    // multiply per size (five attributes a span compute eight sizes).
    value < 0x80 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
}

/// A `sint32`'s wire value (zigzag: 0, −1, 1, −2 … as 0, 1, 2, 3 …).
@inline(__always)
func zigZag32(_ n: Int) -> UInt64 {
    UInt64(UInt32(bitPattern: Int32(truncatingIfNeeded: (n << 1) ^ (n >> 63))))
}

/// A `sint32` read back from its wire value.
@inline(__always)
func unZigZag32(_ n: UInt64) -> Int {
    Int(Int32(truncatingIfNeeded: Int64(bitPattern: n >> 1) ^ -Int64(bitPattern: n & 1)))
}

@inline(__always)
func lengthFieldSize(field: Int, _ length: Int) -> Int {
    varintSize(UInt64(field << 3)) + varintSize(UInt64(length)) + length
}

/// Calls `body` with the UTF-8 bytes of `string`, cut to at most `limit` bytes on a scalar
/// boundary. Native Swift strings are always valid UTF-8 (ill-formed input is repaired to U+FFFD
/// when the `String` is made), so the bytes handed on are valid UTF-8.
@inline(__always)
func withUTF8<R>(_ string: String, limit: Int, _ body: (UnsafeRawPointer, Int) -> R) -> R {
    if let result = string.utf8.withContiguousStorageIfAvailable({ buffer -> R in
        let base = UnsafeRawPointer(buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!)
        return body(base, utf8Prefix(buffer, limit: limit))
    }) {
        return result
    }
    var copy = string
    copy.makeContiguousUTF8()
    return copy.utf8.withContiguousStorageIfAvailable { buffer in
        body(UnsafeRawPointer(buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!), utf8Prefix(buffer, limit: limit))
    }!
}

/// The length of the longest prefix of `buffer` of at most `limit` bytes that ends on a scalar boundary.
@inline(__always)
func utf8Prefix(_ buffer: UnsafeBufferPointer<UInt8>, limit: Int) -> Int {
    guard buffer.count > limit else { return buffer.count }
    var cut = limit
    while cut > 0 && buffer[cut] & 0xC0 == 0x80 { cut -= 1 }
    return cut
}

/// Moves `count` bytes at `base` (`capacity` bytes) into a new allocation of at least `needed`
/// bytes, doubling, aligned to `alignment`; frees the old one. The scratch buffers (on cache lines
/// of their own: ``CacheLineIsolated``) and the batch builder grow their raw memory this way
/// (rarely: the size is kept).
func growRaw(
    _ base: UnsafeMutableRawPointer, count: Int, capacity: Int, toHold needed: Int, alignment: Int = 16
) -> (base: UnsafeMutableRawPointer, capacity: Int) {
    var newCapacity = max(capacity * 2, 16)
    while newCapacity < needed { newCapacity *= 2 }
    let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: alignment)
    newBase.copyMemory(from: base, byteCount: count)
    base.deallocate()
    return (newBase, newCapacity)
}
