/// Memory that one thread writes on every record, placed on cache lines no other allocation shares.
///
/// Two emitting threads' per-thread state (random generator, buffer pool, the span's header),
/// allocated a moment apart, sat next to each other in the heap: each store of one thread took
/// the line from the other's core. Rounding the size up to, and aligning to, 128 bytes (two
/// 64-byte lines: x86 and Arm prefetch lines in aligned pairs) keeps each thread's stores to itself.
/// Free it with the pointer's `deallocate()`.
enum CacheLineIsolated {
    static let alignment = 128

    /// Uninitialized room for `capacity` values of `type`, alone on its cache lines.
    static func allocate<T>(_ type: T.Type, capacity: Int = 1) -> UnsafeMutablePointer<T> {
        allocateBytes(MemoryLayout<T>.stride * capacity).bindMemory(to: T.self, capacity: capacity)
    }

    /// `byteCount` bytes (rounded up to whole pairs of lines), alone on their cache lines.
    static func allocateBytes(_ byteCount: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer.allocate(byteCount: (byteCount + alignment - 1) / alignment * alignment, alignment: alignment)
    }
}
