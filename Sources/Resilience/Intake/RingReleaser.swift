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
/// Thread-safety: every method from any thread; one lock.
final class RingReleaser: Sendable {
    private let ring: Ring
    /// The positions held, ascending (they are taken in the order the drain thread reads).
    private let holds = Mutex<[UInt64]>([])

    init(ring: Ring) { self.ring = ring }

    /// Holds the ring from `position` on. Drain thread; `position` above every earlier hold.
    func hold(_ position: UInt64) { holds.withLock { $0.append(position) } }

    /// A hold ended: frees the ring up to the oldest hold left (or to what was read).
    func release(_ position: UInt64) {
        holds.withLock { holds in
            guard let index = holds.firstIndex(of: position) else { return }
            holds.remove(at: index)
            if index == 0 { ring.release(to: holds.first ?? .max) }
        }
    }

    /// Frees what was read when nothing is held (records that went into no batch: foreign types).
    func releaseIdle() {
        holds.withLock { holds in if holds.isEmpty { ring.release(to: .max) } }
    }

    /// Positions held now.
    var count: Int { holds.withLock { $0.count } }
}

/// One batch's hold on the ring (``RingReleaser``): released when the last copy of the batch is gone.
final class RingHold: Sendable {
    private let releaser: RingReleaser
    private let position: UInt64

    init(_ releaser: RingReleaser, position: UInt64) {
        self.releaser = releaser
        self.position = position
    }

    deinit { releaser.release(position) }
}
