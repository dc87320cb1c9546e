#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A growable byte buffer that records are encoded into on the producer's thread.
///
/// Buffers are pooled per thread (``EmitThreadState``): in steady state taking one, encoding a
/// record and giving it back allocates nothing. Growth (a record larger than any before) is kept.
/// Also carries the state of the span being built in it, so that a ``Span`` is only a handle.
@usableFromInline
final class ScratchBuffer: @unchecked Sendable {
    /// The hot state lives in raw memory, not in class properties: class `var`s cost a dynamic
    /// exclusivity check (swift_beginAccess) on every access, which profiling showed on the emit path.
    let header: UnsafeMutablePointer<ScratchHeader>

    /// Set while a span is built; rare, so a class property is fine.
    var statusMessage = ""

    /// Room after the fields, so that the next object in the heap does not share the cache line of
    /// this one's reference count, which each span's handle retains and releases on its thread
    /// (``CacheLineIsolated``).
    private let padding: (SIMD8<Int>, SIMD8<Int>) = (.zero, .zero)

    init(capacity: Int = 4096) {
        header = CacheLineIsolated.allocate(ScratchHeader.self)
        header.initialize(to: ScratchHeader(base: CacheLineIsolated.allocateBytes(capacity), capacity: capacity))
    }

    deinit {
        if let intake = header.pointee.intake { Self.letGo(intake) }
        header.pointee.base.deallocate()
        header.deinitialize(count: 1)
        header.deallocate()
    }

    @inline(__always) var base: UnsafeMutableRawPointer { header.pointee.base }
    @inline(__always) var capacity: Int { header.pointee.capacity }
    @inline(__always) var count: Int {
        get { header.pointee.count }
        set { header.pointee.count = newValue }
    }
    @inline(__always) var generation: UInt32 { header.pointee.generation }
    /// The encoded record, for ``Intake/submit(_:type:)``.
    @inline(__always) var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: header.pointee.base, count: header.pointee.count) }

    /// Starts a span: empty, owned by `intake`, with its limits.
    ///
    /// The buffer keeps its last span's intake (retained) until a span of another pipeline begins
    /// in it, or the buffer goes: a retain and release of the one `Intake` every thread shares, per
    /// span, made its reference count a cache line that two emitting threads passed back and forth
    /// (~30 ns a span on the emitting side with two threads, `perf record` of
    /// `EmitInstructions 4000000 wall2`). The cost: a pipeline that has been released stays in
    /// memory while a thread's pooled buffer still names it (at most one per pooled buffer).
    @inline(__always)
    func beginSpan(intake: Intake, recordType: Int32) {
        let limits = intake.limits
        header.pointee.count = 0
        if header.pointee.intake?.toOpaque() != Unmanaged.passUnretained(intake).toOpaque() { keep(intake) }
        header.pointee.recordType = recordType
        header.pointee.attributeCount = 0
        header.pointee.droppedAttributes = 0
        header.pointee.eventCount = 0
        header.pointee.droppedEvents = 0
        header.pointee.linkCount = 0
        header.pointee.droppedLinks = 0
        header.pointee.statusCode = 0
        header.pointee.countLimit = limits.countLimit
        header.pointee.valueLimit = limits.valueLengthLimit ?? .max
        header.pointee.eventLimit = limits.eventCountLimit
        header.pointee.linkLimit = limits.linkCountLimit
    }

    /// Replaces the intake the buffer keeps (rare: the first span in the buffer, or another pipeline's).
    @inline(never)
    private func keep(_ intake: Intake) {
        let previous = header.pointee.intake
        header.pointee.intake = Unmanaged.passRetained(intake)
        if let previous { Self.letGo(previous) }
    }

    /// Releases an intake the buffer kept. When that was the last reference, its pipeline was
    /// released long ago, and freeing what it still owns (its ring, its processor) is no work for an
    /// emitting thread (a buffer goes on the emitting thread too, when its pool is full): it goes to
    /// a detached task. (In `make bench`, where each sample makes a pipeline, freeing the last
    /// sample's inside the next one's loop made `withSpan` 1.9 → 5 µs.)
    private static func letGo(_ intake: Unmanaged<Intake>) {
        var last = intake.takeRetainedValue()
        guard isKnownUniquelyReferenced(&last) else { return }
        let unique = last
        Task.detached(priority: .background) { _ = unique }
    }

    /// Ends the span's use of the buffer (its intake stays, for the next span: ``beginSpan(intake:recordType:)``).
    @inline(__always)
    func finishSpan() {
        if header.pointee.statusCode == 2 { statusMessage = "" }
    }

    @inline(__always)
    func reserve(_ extra: Int) {
        if count &+ extra > capacity { grow(to: count + extra) }
    }

    @inline(never)
    private func grow(to needed: Int) {
        // Doubling keeps the capacity a multiple of the 128-byte lines, and the alignment keeps it on lines of its own.
        (header.pointee.base, header.pointee.capacity) = growRaw(
            base, count: count, capacity: capacity, toHold: needed, alignment: CacheLineIsolated.alignment)
    }

    // MARK: Protobuf wire primitives (capacity must have been reserved)

    /// Reserves `extra` bytes and lets `body` write them through a cursor that keeps the write
    /// position in a register: a run of one-call `put…`s stores the count back through the header
    /// after each (a raw pointer the compiler must assume its own stores may alias), which cost a
    /// short attribute a quarter of its instructions.
    @inline(__always)
    func withCursor(reserving extra: Int, _ body: (inout ByteCursor) -> Void) {
        reserve(extra)
        withReservedCursor(body)
    }

    /// A cursor at the end for room already reserved. The one-call primitives below go through it,
    /// so that the encoding of each wire type is written once (``ByteCursor``).
    @inline(__always)
    func withReservedCursor(_ body: (inout ByteCursor) -> Void) {
        let h = header
        var cursor = ByteCursor(base: h.pointee.base, at: h.pointee.count)
        body(&cursor)
        h.pointee.count = cursor.at
    }

    @inline(__always)
    func put(_ byte: UInt8) { withReservedCursor { $0.put(byte) } }

    @inline(__always)
    func putVarint(_ value: UInt64) { withReservedCursor { $0.putVarint(value) } }

    @inline(__always)
    func putFixed64(_ value: UInt64) { withReservedCursor { $0.putFixed64(value) } }

    @inline(__always)
    func putFixed32(_ value: UInt32) { withReservedCursor { $0.putFixed32(value) } }

    @inline(__always)
    func putRaw(_ source: UnsafeRawPointer, _ length: Int) { withReservedCursor { $0.putRaw(source, length) } }

    @inline(__always)
    func putTag(_ field: Int, _ wire: WireType) { withReservedCursor { $0.putTag(field, wire) } }

    /// Opens a length-delimited field whose length is not known yet; close it with ``closeLength(_:)``.
    @inline(__always)
    func openLength(field: Int) -> Int {
        reserve(16)
        putTag(field, .lengthDelimited)
        put(0)  // one byte reserved for the length, moved if it needs more
        return count
    }

    /// Back-patches the length of a field opened with ``openLength(field:)``.
    func closeLength(_ start: Int) {
        let length = count - start
        let size = varintSize(UInt64(length))
        if size == 1 {
            base.storeBytes(of: UInt8(length), toByteOffset: start - 1, as: UInt8.self)
            return
        }
        reserve(size - 1)
        (base + start + size - 1).copyMemory(from: base + start, byteCount: length)
        let saved = count
        count = start - 1
        putVarint(UInt64(length))
        count = saved + size - 1
    }

    /// Writes `bytes` as a length-delimited field.
    @inline(__always)
    func putBytesField(_ field: Int, _ source: UnsafeRawPointer, _ length: Int) {
        withCursor(reserving: length + 16) { $0.putBytesField(field, source, length) }
    }

    /// Writes the UTF-8 of `string` as a length-delimited field, cut at `limit` bytes
    /// (on a scalar boundary).
    @inline(__always)
    func putStringField(_ field: Int, _ string: String, limit: Int = .max) {
        withUTF8(string, limit: limit) { putBytesField(field, $0, $1) }
    }
}

/// The state of a ``ScratchBuffer`` and of the span being built in it.
struct ScratchHeader {
    var base: UnsafeMutableRawPointer
    var capacity: Int
    var count = 0
    /// A ``Span`` handle remembers the generation it was given; any use of a copy after `end()`
    /// sees another generation and does nothing.
    var generation: UInt32 = 0
    /// The pipeline of the buffer's last span, retained (``ScratchBuffer/beginSpan(intake:recordType:)``).
    var intake: Unmanaged<Intake>?
    var recordType: Int32 = 0
    var attributeCount = 0
    var droppedAttributes: UInt32 = 0
    var eventCount = 0
    var droppedEvents: UInt32 = 0
    var linkCount = 0
    var droppedLinks: UInt32 = 0
    var statusCode: UInt8 = 0
    var countLimit = 128
    var valueLimit = Int.max
    var eventLimit = 128
    var linkLimit = 128

    init(base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }
}

/// A write position in a ``ScratchBuffer`` whose room was reserved (``ScratchBuffer/withCursor(reserving:_:)``).
struct ByteCursor {
    let base: UnsafeMutableRawPointer
    var at: Int

    @inline(__always)
    mutating func put(_ byte: UInt8) {
        base.storeBytes(of: byte, toByteOffset: at, as: UInt8.self)
        at &+= 1
    }

    @inline(__always)
    mutating func putVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            put(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        put(UInt8(truncatingIfNeeded: v))
    }

    @inline(__always)
    mutating func putTag(_ field: Int, _ wire: WireType) {
        putVarint(UInt64(field << 3 | Int(wire.rawValue)))
    }

    @inline(__always)
    mutating func putRaw(_ source: UnsafeRawPointer, _ length: Int) {
        // Keys, names and short values up to 16 bytes: two overlapping 8- or 4-byte moves (each inside
        // `source`) instead of a call to memcpy, which cost ~25 instructions a copy. (A third case for
        // 17–32 bytes made the attribute encoders too large to inline: 99 instructions a span more.)
        let to = base + at
        if length >= 8 {
            if length <= 16 {
                let head = source.loadUnaligned(as: UInt64.self)
                let tail = source.loadUnaligned(fromByteOffset: length &- 8, as: UInt64.self)
                to.storeBytes(of: head, as: UInt64.self)
                to.storeBytes(of: tail, toByteOffset: length &- 8, as: UInt64.self)
            } else {
                to.copyMemory(from: source, byteCount: length)
            }
        } else if length >= 4 {
            let head = source.loadUnaligned(as: UInt32.self)
            let tail = source.loadUnaligned(fromByteOffset: length &- 4, as: UInt32.self)
            to.storeBytes(of: head, as: UInt32.self)
            to.storeBytes(of: tail, toByteOffset: length &- 4, as: UInt32.self)
        } else if length > 0 {
            let last = length &- 1
            to.storeBytes(of: source.load(as: UInt8.self), as: UInt8.self)
            to.storeBytes(of: source.load(fromByteOffset: length >> 1, as: UInt8.self), toByteOffset: length >> 1, as: UInt8.self)
            to.storeBytes(of: source.load(fromByteOffset: last, as: UInt8.self), toByteOffset: last, as: UInt8.self)
        }
        at &+= length
    }

    @inline(__always)
    mutating func putFixed64(_ value: UInt64) {
        base.storeBytes(of: value.littleEndian, toByteOffset: at, as: UInt64.self)
        at &+= 8
    }

    @inline(__always)
    mutating func putFixed32(_ value: UInt32) {
        base.storeBytes(of: value.littleEndian, toByteOffset: at, as: UInt32.self)
        at &+= 4
    }

    /// A length-delimited field of `length` bytes from `source`.
    @inline(__always)
    mutating func putBytesField(_ field: Int, _ source: UnsafeRawPointer, _ length: Int) {
        putTag(field, .lengthDelimited)
        putVarint(UInt64(length))
        putRaw(source, length)
    }
}
