// The floor a native span is measured against (issue 28): the same work as `emitSpan` — two ids
// from a per-thread xoshiro256++, two CLOCK_REALTIME reads, the OTLP `Span` message with the same
// name, kind, flags and 5 attributes (the keys and values read from Swift `String`s), and a copy into
// a shared ring claimed with one atomic add — written as plainly as Swift allows, with nothing of
// Spillway: no pool, no handle, no limits, no sampler, no overflow policy, no reader to wait for.
//
// Used by the Benchmarks package (`floor: …` row of `make bench`) and, through a symbolic link, by
// EmitInstructions (`make bench-instructions`, shape `floor`): the same source in both.
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A many-producer ring without a consumer: a claim is one atomic add, a record is a 4-byte length
/// and its bytes, published by a release store of the length (what a reader would pair with).
final class FloorRing: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    let head = Atomic<Int>(0)

    init(capacity: Int = 64 << 20) {
        self.capacity = capacity
        base = .allocate(byteCount: capacity + 4096, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: capacity + 4096)
    }

    deinit { base.deallocate() }

    @inline(__always)
    func write(_ bytes: UnsafeRawPointer, _ count: Int) {
        let size = (count &+ 4 &+ 7) & ~7
        let at = head.add(size, ordering: .relaxed).oldValue % capacity
        (base + at + 4).copyMemory(from: bytes, byteCount: count)
        atomicMemoryFence(ordering: .releasing)  // the bytes before the length: pairs with a reader's acquire of it
        (base + at).storeBytes(of: UInt32(count), as: UInt32.self)
    }
}

/// What one producer thread owns: its random state and a scratch buffer to encode into.
struct FloorThread {
    var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    let scratch = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 16)

    init(seed: UInt64) {
        (s0, s1, s2, s3) = (seed | 1, seed &* 0x9E37_79B9_7F4A_7C15, ~seed, seed ^ 0xD1B5_4A32_D192_ED03)
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = ((s0 &+ s3) << 23 | (s0 &+ s3) >> 41) &+ s0
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }
}

/// A write position in `FloorThread.scratch`.
struct FloorCursor {
    let base: UnsafeMutableRawPointer
    var at = 0

    @inline(__always) mutating func byte(_ b: UInt8) {
        base.storeBytes(of: b, toByteOffset: at, as: UInt8.self)
        at &+= 1
    }

    @inline(__always) mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            byte(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        byte(UInt8(truncatingIfNeeded: v))
    }

    @inline(__always) mutating func fixed64(_ value: UInt64) {
        base.storeBytes(of: value.littleEndian, toByteOffset: at, as: UInt64.self)
        at &+= 8
    }

    @inline(__always) mutating func bytes(_ source: UnsafeRawPointer, _ count: Int) {
        (base + at).copyMemory(from: source, byteCount: count)
        at &+= count
    }

    /// A string field. (Native Swift strings are contiguous; a bridged one would be skipped.)
    @inline(__always) mutating func string(_ field: UInt8, _ s: String) {
        _ = s.utf8.withContiguousStorageIfAvailable { utf8 in
            byte(field << 3 | 2)
            varint(UInt64(utf8.count))
            bytes(utf8.baseAddress!, utf8.count)
        }
    }

    /// `KeyValue { key = 1; AnyValue value = 2 }` in `Span.attributes` (field 9), the value's
    /// content `valueSize` bytes long, written by `value`.
    @inline(__always) mutating func keyValue(_ key: String, valueSize: Int, _ value: (inout FloorCursor) -> Void) {
        _ = key.utf8.withContiguousStorageIfAvailable { utf8 in
            byte(9 << 3 | 2)
            let keySize = 1 + varintSize(UInt64(utf8.count)) + utf8.count
            varint(UInt64(keySize + 1 + varintSize(UInt64(valueSize)) + valueSize))
            byte(1 << 3 | 2)
            varint(UInt64(utf8.count))
            bytes(utf8.baseAddress!, utf8.count)
            byte(2 << 3 | 2)
            varint(UInt64(valueSize))
            value(&self)
        }
    }
}

@inline(__always)
func floorNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// What `emitSpan` passes the SDK, handed to ``floorSpan(_:_:_:_:)`` as arguments so that the
/// compiler cannot fold the literals' lengths into the encoder (the SDK's encoder does not see them either).
struct FloorSpanInput {
    var name = "GET /api/cart"
    var methodKey = "http.request.method", method = "GET"
    var routeKey = "http.route", route = "/api/cart"
    var statusKey = "http.response.status_code", status = 200
    var userKey = "user.id", cacheKey = "cache.hit"
}

/// `count` floor spans on this thread (its own random state and scratch buffer), `first` the first
/// span's `user.id`.
@inline(never)
func floorSpans(_ ring: FloorRing, count: Int, first: Int = 0) {
    var thread = FloorThread(seed: UInt64(first) &+ 42)
    let input = FloorSpanInput()
    for i in first..<(first + count) { floorSpan(ring, &thread, input, i) }
    thread.scratch.deallocate()
}

/// `emitSpan`'s work, plainly: the floor of issue 28's native-span target.
@inline(never)
func floorSpan(_ ring: FloorRing, _ thread: inout FloorThread, _ input: FloorSpanInput, _ i: Int) {
    let traceHigh = thread.next(), traceLow = thread.next(), spanID = thread.next()
    var c = FloorCursor(base: thread.scratch)
    c.byte(1 << 3 | 2)
    c.byte(16)
    c.base.storeBytes(of: traceHigh.bigEndian, toByteOffset: c.at, as: UInt64.self)
    c.base.storeBytes(of: traceLow.bigEndian, toByteOffset: c.at + 8, as: UInt64.self)
    c.at += 16
    c.byte(2 << 3 | 2)
    c.byte(8)
    c.base.storeBytes(of: spanID.bigEndian, toByteOffset: c.at, as: UInt64.self)
    c.at += 8
    c.string(5, input.name)
    c.byte(6 << 3)
    c.byte(2)  // SPAN_KIND_SERVER
    c.byte(7 << 3 | 1)
    c.fixed64(floorNow())
    c.keyValue(input.methodKey, valueSize: 2 + input.method.utf8.count) { $0.string(1, input.method) }
    c.keyValue(input.routeKey, valueSize: 2 + input.route.utf8.count) { $0.string(1, input.route) }
    c.keyValue(input.statusKey, valueSize: 1 + varintSize(UInt64(input.status))) {
        $0.byte(3 << 3)
        $0.varint(UInt64(input.status))
    }
    c.keyValue(input.userKey, valueSize: 1 + varintSize(UInt64(i))) {
        $0.byte(3 << 3)
        $0.varint(UInt64(i))
    }
    c.keyValue(input.cacheKey, valueSize: 2) {
        $0.byte(2 << 3)
        $0.byte(1)
    }
    c.byte(8 << 3 | 1)
    c.fixed64(floorNow())
    c.varint(16 << 3 | 5)
    c.base.storeBytes(of: UInt32(0x101).littleEndian, toByteOffset: c.at, as: UInt32.self)
    c.at += 4
    ring.write(thread.scratch, c.at)
}

@inline(__always)
private func varintSize(_ value: UInt64) -> Int { max(1, (64 - value.leadingZeroBitCount + 6) / 7) }
