import Synchronization

/// Frees a file-backed ring's space only when the records in it are delivered, on disk or
/// dropped — never when they are merely read — so a process that dies leaves every record that
/// was not yet safe elsewhere in the ring file (ARCHITECTURE.md "Crash safety").
///
/// The drain thread puts a hold on the position of the first record of each batch it starts;
/// the batch carries the hold (``RingHold``) as long as any copy of it exists — in an export, a
/// retry, a destination's queue, the spill store's writer — and the last copy to go releases it.
/// The ring is freed up to the oldest hold, or up to the read position when nothing is held. A
/// record that was delivered behind an older held one stays in the ring until that one is
/// released: after a crash it is sent again (a duplicate, counted in the recovery).
///
/// One batch that takes long (retries against a collector that is down, a slow collector) would
/// hold everything behind it. So when it does — the ring half full, or an eighth full behind a
/// batch out for 100 ms — ``relocatePinned()`` moves the oldest batches' requests to the ring's
/// tail, as one record each (``relocatedBatchType(signal:route:)``): the batch stays recoverable
/// there, and the space behind it is freed (and a crash does not send it all again).
///
/// Thread-safety: every method from any thread; one lock.
final class RingReleaser: Sendable {
    private let ring: Ring
    private let state = Mutex(State())

    /// One hold: where it starts, and once built, the request that would be relocated.
    struct Entry {
        var position: UInt64
        let id: UInt64
        var batch: Relocatable?
        /// When the batch was built (monotonic nanoseconds).
        var builtAt: UInt64 = 0
    }

    /// What relocation writes: the request, its records, its signal and route index.
    struct Relocatable {
        var body: [UInt8]
        var records: Int
        var signal: TelemetrySignal
        var route: Int
    }

    private struct State {
        /// Ascending by position.
        var entries: [Entry] = []
        var nextID: UInt64 = 0
        var relocated = 0
        /// Set by ``relocateAll()``: the ring file may belong to the next pipeline now; nothing more is freed.
        var detached = false
    }

    /// Producers leave a sixteenth of the ring (2 MiB of the default 32 MiB) to relocations: a
    /// relocation is what frees a ring full of batches in retry, so it must fit when producers'
    /// records no longer do (an outage at full speed once blocked the emitters for 1.2 s at a time:
    /// the ring full, the oldest batches retrying, no room at the tail to move them).
    init(ring: Ring) {
        self.ring = ring
        ring.reserveForRelocation(ring.capacity / 16)
    }

    /// Holds the ring from `position` on (a record read, or a relocated request); returns the hold's id.
    func hold(_ position: UInt64) -> UInt64 {
        state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            let index = state.entries.lastIndex { $0.position <= position }.map { $0 + 1 } ?? 0
            state.entries.insert(Entry(position: position, id: id, batch: nil), at: index)
            return id
        }
    }

    /// Hold `id` now belongs to a built batch, which relocation may move.
    func attach(_ id: UInt64, _ batch: Relocatable) {
        state.withLock { state in
            if let index = state.entries.firstIndex(where: { $0.id == id }) {
                state.entries[index].batch = batch
                state.entries[index].builtAt = monotonicNanos()
            }
        }
    }

    /// Hold `id` ended: frees the ring up to the oldest hold left (or to what was read).
    func release(_ id: UInt64) {
        state.withLock { state in
            guard !state.detached, let index = state.entries.firstIndex(where: { $0.id == id }) else { return }
            state.entries.remove(at: index)
            if index == 0 { ring.release(to: state.entries.first?.position ?? .max) }
        }
    }

    /// Frees what was read when nothing is held (records that went into no batch: foreign types, relocated requests).
    func releaseIdle() {
        state.withLock { state in if state.entries.isEmpty && !state.detached { ring.release(to: .max) } }
    }

    /// Whether the oldest hold should move: the ring is half full, or an eighth full behind a batch
    /// out for longer than ``pinnedAge`` (a retry; the records behind it were likely delivered or
    /// spilled already, and a crash would send them again).
    private func pins(_ entry: Entry, now: UInt64) -> Bool {
        let used = ring.bytesInUse
        return used * 2 >= ring.capacity || (used * 8 >= ring.capacity && now &- entry.builtAt > Self.pinnedAge)
    }

    /// How long a batch may hold the oldest space of a ring an eighth full before it is relocated.
    static let pinnedAge: UInt64 = 100_000_000

    /// While the oldest hold is a built batch that pins the ring (``pins(_:now:)``), copies that
    /// batch's request to the tail and frees the space behind it; at most `limit` a call. Returns how many moved.
    @discardableResult
    func relocatePinned(limit: Int = 8) -> Int {
        guard ring.bytesInUse * 8 >= ring.capacity else { return 0 }
        let now = monotonicNanos()
        return state.withLock { state in
            var moved = 0
            while moved < limit, !state.detached, let first = state.entries.first, pins(first, now: now), relocateFirst(&state, now: now) {
                moved += 1
            }
            state.relocated += moved
            return moved
        }
    }

    /// At shutdown, for exports still under way past its grace (an exporter that ignores
    /// cancellation): every held batch's request moves to the tail, so a ring file left behind
    /// holds what is unaccounted for, not also everything delivered or spilled behind it, which
    /// the next process would send again. Returns the records moved. Then the releaser lets go of
    /// the ring: an export that ends later frees nothing in a file the next pipeline may have opened.
    func relocateAll() -> Int {
        let end = ring.tailPosition
        let now = monotonicNanos()
        return state.withLock { state in
            var records = 0
            while let first = state.entries.first, first.position < end, let batch = first.batch, relocateFirst(&state, now: now) {
                records += batch.records
                state.relocated += 1
            }
            if !state.entries.isEmpty { state.detached = true }
            return records
        }
    }

    /// Copies the oldest hold's request to the tail, holds it there, and frees the ring up to the
    /// oldest hold left. `false` (nothing moved) when it is not a built batch or the ring is full.
    private func relocateFirst(_ state: inout State, now: UInt64) -> Bool {
        guard var first = state.entries.first, let batch = first.batch else { return false }
        let type = relocatedBatchType(signal: batch.signal, route: batch.route)
        guard let position = ring.write(type: type, count: UInt32(clamping: batch.records), body: batch.body) else { return false }
        state.entries.removeFirst()
        first.position = position
        first.builtAt = now
        let index = state.entries.lastIndex { $0.position <= position }.map { $0 + 1 } ?? 0
        state.entries.insert(first, at: index)
        ring.release(to: state.entries.first!.position)
        return true
    }

    /// Holds now, and requests relocated so far.
    var counts: (holds: Int, relocated: Int) { state.withLock { ($0.entries.count, $0.relocated) } }
}

/// One batch's hold on the ring (``RingReleaser``): released when the last copy of the batch is gone.
final class RingHold: Sendable {
    private let releaser: RingReleaser
    let id: UInt64

    init(_ releaser: RingReleaser, id: UInt64) {
        self.releaser = releaser
        self.id = id
    }

    deinit { releaser.release(id) }
}
