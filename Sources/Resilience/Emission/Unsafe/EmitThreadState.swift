internal import CRingBuffer

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What each producer thread keeps: a pool of scratch buffers and a random generator.
///
/// A handle to raw memory, found through a thread-local slot (`crb_thread_get`, one load): no
/// class, so taking it costs no retain, release or closure (a class lent with
/// `_withUnsafeGuaranteedRef` kept the span's encoder in a closure of its own, ~50 instructions of
/// calls and spilled arguments). Created on a thread's first emit; a pthread key frees it, and the
/// buffers pooled in it, when the thread exits.
struct EmitThreadState {
    private struct Storage {
        var random: Xoshiro256
        var count = 0
        let pool: UnsafeMutablePointer<Unmanaged<ScratchBuffer>>
    }

    private static let poolLimit = 64
    private let storage: UnsafeMutablePointer<Storage>

    /// The calling thread's state.
    @inline(__always)
    static var current: EmitThreadState {
        EmitThreadState(storage: (crb_thread_get() ?? makeCurrent()).assumingMemoryBound(to: Storage.self))
    }

    private init(storage: UnsafeMutablePointer<Storage>) { self.storage = storage }

    @inline(never)
    private static func makeCurrent() -> UnsafeMutableRawPointer {
        var seed = SystemRandomNumberGenerator()  // getrandom(2), once per thread
        // Written on every span: on cache lines of its own, apart from another thread's.
        let storage = CacheLineIsolated.allocate(Storage.self)
        let pool = CacheLineIsolated.allocate(Unmanaged<ScratchBuffer>.self, capacity: poolLimit)
        storage.initialize(to: Storage(random: Xoshiro256(seed: &seed), pool: pool))
        pthread_setspecific(threadKey, storage)
        crb_thread_set(storage)
        return UnsafeMutableRawPointer(storage)
    }

    /// The key's destructor, on the exiting thread: releases the pooled buffers and the storage.
    fileprivate static func release(_ pointer: UnsafeMutableRawPointer) {
        // An emit after this (another key's destructor) makes a new state.
        crb_thread_set(nil)
        let storage = pointer.assumingMemoryBound(to: Storage.self)
        for i in 0..<storage.pointee.count { storage.pointee.pool[i].release() }
        storage.pointee.pool.deallocate()
        storage.deinitialize(count: 1)
        storage.deallocate()
    }

    @inline(__always)
    func takeBuffer() -> ScratchBuffer {
        let n = storage.pointee.count
        guard n > 0 else { return ScratchBuffer() }
        storage.pointee.count = n - 1
        return storage.pointee.pool[n - 1].takeRetainedValue()
    }

    /// Takes the buffer back into the pool; `consuming`, so that the caller's reference moves into
    /// the pool instead of a retain here and a release in the caller.
    @inline(__always)
    func giveBack(_ buffer: consuming ScratchBuffer) {
        buffer.header.pointee.generation &+= 1
        let n = storage.pointee.count
        guard n < Self.poolLimit else { return }
        storage.pointee.pool[n] = Unmanaged.passRetained(buffer)
        storage.pointee.count = n + 1
    }

    @inline(__always)
    func newTraceID() -> TraceID {
        var id = TraceID(high: storage.pointee.random.next(), low: storage.pointee.random.next())
        if !id.isValid { id.low = 1 }
        return id
    }

    @inline(__always)
    func newSpanID() -> SpanID {
        let value = storage.pointee.random.next()
        return SpanID(value == 0 ? 1 : value)
    }
}

private let threadKey: pthread_key_t = {
    var key = pthread_key_t()
    #if os(Linux)
        pthread_key_create(&key) { pointer in
            guard let pointer else { return }
            EmitThreadState.release(pointer)
        }
    #else
        pthread_key_create(&key) { pointer in EmitThreadState.release(pointer) }
    #endif
    return key
}()

/// xoshiro256++ (Blackman & Vigna): fast, not cryptographic, good enough for ids, which
/// only need to be unique with high probability. Seeded per thread from getrandom(2).
struct Xoshiro256: RandomNumberGenerator {
    private var s0, s1, s2, s3: UInt64

    init(seed: inout some RandomNumberGenerator) {
        repeat {
            s0 = seed.next()
            s1 = seed.next()
            s2 = seed.next()
            s3 = seed.next()
        } while s0 | s1 | s2 | s3 == 0
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = (s0 &+ s3).rotatedLeft(23) &+ s0
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3.rotatedLeft(45)
        return result
    }
}

extension UInt64 {
    @inline(__always)
    func rotatedLeft(_ n: UInt64) -> UInt64 { (self << n) | (self >> (64 - n)) }
}
