internal import CRingBuffer

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What each producer thread keeps: a pool of scratch buffers and a random generator.
///
/// Reached through a pthread key (Swift has no `thread_local`); created on a thread's first
/// emit and released when the thread exits.
final class EmitThreadState {
    /// Pool and generator live in raw memory: class `var`s would cost a dynamic exclusivity
    /// check (swift_beginAccess) on every take, give-back and id.
    private struct State {
        var random: Xoshiro256
        var count = 0
    }

    private static let poolLimit = 64
    private let state: UnsafeMutablePointer<State>
    private let pool: UnsafeMutablePointer<Unmanaged<ScratchBuffer>>

    init() {
        var seed = SystemRandomNumberGenerator()  // getrandom(2), once per thread
        state = .allocate(capacity: 1)
        state.initialize(to: State(random: Xoshiro256(seed: &seed)))
        pool = .allocate(capacity: Self.poolLimit)
    }

    deinit {
        for i in 0..<state.pointee.count { pool[i].release() }
        pool.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Runs `body` with this thread's state without retaining and releasing it (the thread's key
    /// holds it until the thread exits): the emit path took it twice per span, a retain and a
    /// release each time.
    /// Found through a thread-local slot (`crb_thread_get`, one load); the pthread key only frees
    /// the state at thread exit (its destructor also clears the slot).
    @inline(__always)
    static func withCurrent<Result>(_ body: (EmitThreadState) -> Result) -> Result {
        Unmanaged<EmitThreadState>.fromOpaque(crb_thread_get() ?? makeCurrent())._withUnsafeGuaranteedRef(body)
    }

    @inline(never)
    private static func makeCurrent() -> UnsafeMutableRawPointer {
        let pointer = Unmanaged.passRetained(EmitThreadState()).toOpaque()
        pthread_setspecific(threadKey, pointer)
        crb_thread_set(pointer)
        return pointer
    }

    @inline(__always)
    func takeBuffer() -> ScratchBuffer {
        let n = state.pointee.count
        guard n > 0 else { return ScratchBuffer() }
        state.pointee.count = n - 1
        return pool[n - 1].takeRetainedValue()
    }

    @inline(__always)
    func giveBack(_ buffer: ScratchBuffer) {
        buffer.header.pointee.generation &+= 1
        let n = state.pointee.count
        guard n < Self.poolLimit else { return }
        pool[n] = Unmanaged.passRetained(buffer)
        state.pointee.count = n + 1
    }

    @inline(__always)
    func newTraceID() -> TraceID {
        var id = TraceID(high: state.pointee.random.next(), low: state.pointee.random.next())
        if !id.isValid { id.low = 1 }
        return id
    }

    @inline(__always)
    func newSpanID() -> SpanID {
        let value = state.pointee.random.next()
        return SpanID(value == 0 ? 1 : value)
    }
}

private let threadKey: pthread_key_t = {
    var key = pthread_key_t()
    #if os(Linux)
        pthread_key_create(&key) { pointer in
            guard let pointer else { return }
            // Runs on the exiting thread: an emit after this (another key's destructor) makes a new state.
            crb_thread_set(nil)
            Unmanaged<EmitThreadState>.fromOpaque(pointer).release()
        }
    #else
        pthread_key_create(&key) { pointer in
            crb_thread_set(nil)
            Unmanaged<EmitThreadState>.fromOpaque(pointer).release()
        }
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
