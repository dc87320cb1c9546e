import Logging
import Synchronization

/// Drains the ring on one OS thread, batches records per signal, and exports the batches.
///
/// A batch is exported when it holds `maxExportBatchSize` records or its oldest record has
/// waited `scheduleDelay`. At most `maxConcurrentExports` exports per signal run at once; when
/// all are busy the drain thread waits, the ring fills, and the overflow policy decides.
/// The drain thread never busy-polls an empty ring: it parks, with a back-off from 50 µs to 5 ms
/// (a spinning consumer costs producers 10×: measured when the ring was designed; `make bench`), and is woken for flushes.
final class BatchProcessor: @unchecked Sendable {
    private let core: PipelineCore
    private let ledger: Ledger
    /// Read only by the drain thread; a new value arrives through ``update(traces:logs:)``.
    private var configurations: SignalTable<BatchConfiguration>
    private let pendingConfigurations = Mutex<SignalTable<BatchConfiguration>?>(nil)
    /// Bumped by `update` (release); the drain thread compares it with `seenVersion` (acquire) each loop.
    private let configurationVersion = Atomic<Int>(0)
    private var seenVersion = 0
    /// By ``RouteSlot``: records of different routes are never batched together.
    private let builders: [BatchBuilder]
    private let routeNames: [String?]
    /// Per signal, across routes: monotonic within the pipeline.
    private var sequences = SignalTable<UInt64>(traces: 0, logs: 0)
    private let inFlight = SignalTable { _ in InFlightCounter() }
    private let parker = ThreadParker()
    private let stopRequested = Atomic<Bool>(false)
    private let abandonRequested = Atomic<Bool>(false)
    let exited = Atomic<Bool>(false)
    /// Callers of ``forceFlush()`` waiting for the drain thread. `closed` once the thread has
    /// exited: a later caller returns at once instead of waiting for a thread that is gone.
    private let flushWaiters = Mutex<FlushWaiters>(FlushWaiters())
    private var scopes: [[UInt8]] = []
    /// A drain that found fewer records than this means the thread is right behind the producers.
    private static let caughtUp = 256

    init(core: PipelineCore, traces: BatchConfiguration, logs: BatchConfiguration) {
        self.core = core
        self.ledger = core.ledger
        self.configurations = SignalTable(traces: traces, logs: logs)
        let routeCount = core.routes.routes.count + 1
        self.routeNames = (0..<routeCount).map { core.routes.name($0) }
        self.builders = (0..<RouteSlot.count(routes: routeCount)).map { index in
            // The default route's builders are sized for full batches; the others grow as needed.
            let expected = index < 2 ? (index == 0 ? traces : logs).maxExportBatchSize * 512 : 4096
            return BatchBuilder(signal: RouteSlot.signal(index), route: RouteSlot.route(index), expectedBytes: expected)
        }
    }

    func start() {
        startThread(name: "spillway-drain") { [self] in run() }
    }

    /// New batch sizes and delays, taken by the drain thread at its next loop (live reconfiguration).
    /// A batch being filled keeps its deadline; the new size applies from the next record.
    func update(traces: BatchConfiguration, logs: BatchConfiguration) {
        pendingConfigurations.withLock { $0 = SignalTable(traces: traces, logs: logs) }
        configurationVersion.add(1, ordering: .releasing)  // pairs with the acquiring load in run()
        parker.unpark()
    }

    /// Wakes the drain thread (flush, shutdown, a producer blocked on a full ring).
    func wake() { parker.unpark() }

    /// Returns when every record committed before the call has been exported or dropped.
    func forceFlush() async {
        let target = core.ring.tailPosition
        await withCheckedContinuation { continuation in
            let closed = flushWaiters.withLock { waiters -> Bool in
                if waiters.closed { return true }
                waiters.list.append((target, continuation))
                return false
            }
            // The drain thread has exited (shutdown): nothing it could drain is left to wait for.
            if closed { continuation.resume() } else { parker.unpark() }
        }
    }

    /// Asks the thread to finish: with `abandon`, at once; otherwise after everything is exported.
    func stop(abandon: Bool) {
        if abandon { abandonRequested.store(true, ordering: .relaxed) }
        stopRequested.store(true, ordering: .relaxed)
        parker.unpark()
    }

    // MARK: The drain thread

    private func run() {
        var idle: UInt64 = 50_000
        while !abandonRequested.load(ordering: .relaxed) {
            let version = configurationVersion.load(ordering: .acquiring)  // pairs with the releasing add in update()
            if version != seenVersion, let next = pendingConfigurations.withLock({ $0 }) {
                seenVersion = version
                configurations = next
                for builder in builders where !builder.isEmpty {
                    if builder.count >= configurations[builder.signal].maxExportBatchSize { dispatch(builder) }
                }
            }
            let drained = drainOnce()
            let now = monotonicNanos()
            for builder in builders where !builder.isEmpty && now >= builder.deadline { dispatch(builder) }
            if flushWaiters.withLock({ !$0.list.isEmpty }) { flush() }
            if stopRequested.load(ordering: .relaxed) && core.ring.bytesInUse == 0 && builders.allSatisfy(\.isEmpty) {
                waitForExports()
                break
            }
            if drained == 0 {
                var sleep = idle
                for builder in builders where !builder.isEmpty { sleep = min(sleep, builder.deadline &- min(now, builder.deadline)) }
                parker.park(nanoseconds: max(sleep, 10_000))
                idle = min(idle * 2, 5_000_000)
            } else if drained < Self.caughtUp {
                // The drain thread has caught up with the producers: reading the cache lines they
                // are writing right now would bounce those lines between cores on every record
                // (measured: 7 ns → 120–150 ns per record). Let them get ahead first;
                // a flush or a blocked producer wakes the thread at once.
                parker.park(nanoseconds: 200_000)
                idle = 50_000
            } else {
                idle = 50_000
            }
        }
        // Wake anybody still waiting for a flush: the pipeline is going away.
        // Closed under the same lock that forceFlush() appends under, so no caller is left behind
        // (one that came after the thread exited used to wait forever: a shutdown whose deadline
        // passed before its flush task ran hung in `await flush.value`).
        let left = flushWaiters.withLock { waiters in
            waiters.closed = true
            defer { waiters.list.removeAll() }
            return waiters.list
        }
        for waiter in left { waiter.continuation.resume() }
        exited.store(true, ordering: .releasing)
    }

    private func drainOnce() -> Int {
        // Counted locally and booked before any batch leaves the thread (an export may settle
        // its records before this loop ends), so the ledger never settles what it did not accept.
        var accepted = (0, 0)
        func book() {
            ledger.accepted(.traces, accepted.0)
            ledger.accepted(.logs, accepted.1)
            accepted = (0, 0)
        }
        let n = core.ring.drain(maxBytes: 1 << 20) { type, payload in
            guard let slot = RouteSlot.index(of: type), slot < builders.count else { return }  // not a record type we write
            let builder = builders[slot]
            let configuration = configurations[builder.signal]
            if builder.isEmpty { builder.deadline = monotonicNanos() &+ UInt64(configuration.scheduleDelay.nanoseconds) }
            builder.append(scope: type.recordScope, payload)
            if builder.signal == .traces { accepted.0 += 1 } else { accepted.1 += 1 }
            if builder.count >= configuration.maxExportBatchSize {
                book()
                dispatch(builder)
            }
        }
        book()
        return n
    }

    private func dispatch(_ builder: BatchBuilder) {
        let signal = builder.signal
        let limit = configurations[signal].maxConcurrentExports
        while inFlight[signal].value.load(ordering: .acquiring) >= limit {
            if abandonRequested.load(ordering: .relaxed) { return }
            // With a spill store, a ring that fills while every export slot is busy (retries
            // waiting out a backoff or a Retry-After, a slow collector) overflows to disk instead
            // of dropping: the batch is spilled now and replayed later.
            if core.spill != nil && core.ring.bytesInUse * 2 >= core.ring.capacity {
                core.spillUnderPressure(build(builder))
                return
            }
            parker.park(nanoseconds: 1_000_000)
        }
        let batch = build(builder)
        inFlight[signal].value.add(1, ordering: .relaxed)
        let (core, parker, counter) = (self.core, self.parker, self.inFlight[signal])
        core.startExport {
            _ = await core.export(batch)
            counter.value.subtract(1, ordering: .releasing)
            parker.unpark()
        }
    }

    /// The request of what `builder` holds (which it then forgets), numbered in its signal's sequence.
    private func build(_ builder: BatchBuilder) -> ExportBatch {
        if scopes.count < core.scopes.count { scopes = core.scopes.snapshot() }
        var batch = builder.build(resource: core.resource, scopes: scopes)
        batch.route = routeNames[builder.route]
        batch.sequence = sequences[builder.signal]
        sequences[builder.signal] += 1
        return batch
    }

    private func flush() {
        let target = flushWaiters.withLock { $0.list.map(\.target).max() ?? 0 }
        while core.ring.headPosition < target && !abandonRequested.load(ordering: .relaxed) {
            if drainOnce() > 0 { continue }
            // A producer is between claim and commit (a memcpy): wait for it. Nothing may take
            // its space back, since it may still write there; shutdown's deadline bounds the wait.
            parker.park(nanoseconds: 100_000)
        }
        for builder in builders where !builder.isEmpty { dispatch(builder) }
        waitForExports()
        let head = core.ring.headPosition
        let done = flushWaiters.withLock { waiters in
            let done = waiters.list.filter { $0.target <= head }
            waiters.list.removeAll { $0.target <= head }
            return done
        }
        for waiter in done { waiter.continuation.resume() }
    }

    private func waitForExports() {
        while inFlight.values.contains(where: { $0.value.load(ordering: .acquiring) > 0 }) && !abandonRequested.load(ordering: .relaxed) {
            parker.park(nanoseconds: 1_000_000)
        }
    }

    /// After the thread exited, with a spill store: what is left in the builders and the ring
    /// goes to disk (shutdown "spills the rest"). Returns the records spilled; what the store
    /// refuses is dropped (`disk_full`, `spill_failed`) and reported.
    func spillRemaining(to store: SpillStore) -> Int {
        var spilled = 0
        let scopes = core.scopes.snapshot()
        func spill(_ builder: BatchBuilder) {
            guard !builder.isEmpty else { return }
            var batch = builder.build(resource: core.resource, scopes: scopes)
            batch.route = routeNames[builder.route]
            batch.sequence = sequences[builder.signal]
            sequences[builder.signal] += 1
            do {
                let segment = try store.append(batch)
                spilled += batch.recordCount
                ledger.kept(
                    batch, in: .spilled, segment: segment, attempt: 0,
                    error: ResilienceError(code: .shutDown, message: "not exported by the shutdown deadline"), kind: .shutdown)
            } catch {
                ledger.droppedInside(
                    signal: batch.signal, route: builder.route, error.isDiskFull ? .diskFull : .spillFailed, batch.recordCount)
            }
        }
        for builder in builders { spill(builder) }
        while core.ring.drain(
            maxBytes: 1 << 20,
            { type, payload in
                guard let slot = RouteSlot.index(of: type), slot < builders.count else { return }
                let builder = builders[slot]
                ledger.accepted(builder.signal, 1)
                builder.append(scope: type.recordScope, payload)
                if builder.count >= configurations[builder.signal].maxExportBatchSize { spill(builder) }
            }) > 0
        {}
        for builder in builders { spill(builder) }
        return spilled
    }

    /// After the thread exited: what is left in the builders and the ring, counted as dropped.
    func dropRemaining(reason: DropReason) -> Int {
        var dropped = 0
        for builder in builders where !builder.isEmpty {
            ledger.droppedInside(signal: builder.signal, route: builder.route, reason, builder.count)
            dropped += builder.count
            builder.reset()
        }
        while core.ring.drain(
            maxBytes: 1 << 20,
            { type, _ in
                guard let slot = RouteSlot.index(of: type) else { return }
                ledger.accepted(RouteSlot.signal(slot), 1)
                ledger.droppedInside(signal: RouteSlot.signal(slot), route: type.recordRoute, reason, 1)
                dropped += 1
            }) > 0
        {}
        return dropped
    }
}

final class InFlightCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// The callers of ``BatchProcessor/forceFlush()`` and whether the drain thread is gone.
struct FlushWaiters {
    var list: [(target: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
    var closed = false
}
