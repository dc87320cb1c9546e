import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Drains the ring on one OS thread, batches records per signal, and exports the batches.
///
/// A batch is exported when it holds `maxExportBatchSize` records or its oldest record has
/// waited `scheduleDelay`. At most as many exports per signal run at once as its
/// ``ExportWindow`` allows (adaptive, up to `maxConcurrentExports`); when all are busy the drain
/// thread waits, the ring fills, and the valve or the overflow policy decides.
/// The drain thread never busy-polls an empty ring: it parks, with a back-off from 50 µs to 5 ms
/// (a spinning consumer costs producers 10×: measured when the ring was designed; `make bench`), and is woken for flushes.
final class BatchProcessor: RecordProcessor, @unchecked Sendable {
    let ring: Ring
    /// With a file-backed ring: frees its space as batches are delivered, spilled or dropped.
    let releaser: RingReleaser?
    /// With a file-backed ring and a `machineCrash` route: the group commit its emits wait for.
    let syncer: RingSyncer?
    /// Per route (0: the default route): how long an emit waits for its record's sync, or `nil`.
    private let syncTimeouts: [UInt64?]
    let ledger: Ledger
    private let tasks: ExportTasks
    /// With a spill store: where batches go when every export slot is busy and the ring is half
    /// full, and what shutdown could not export.
    private let destination: (any FailureDestination)?
    /// The routes' other destinations (``ExportRoute/destinations``); `nil` without any.
    let fanOut: DestinationFanOut?
    private let scopeRegistry: ScopeRegistry
    private let resource: [UInt8]
    /// Per route (0: the default route): how long a producer may wait for room, or `nil` to drop.
    private let blockNanos: [UInt64?]
    /// Read only by the drain thread; a new value arrives through ``update(traces:logs:)``. This and
    /// the other drain-thread `var`s skip the dynamic exclusivity checks (read per record).
    @exclusivity(unchecked) private(set) var configurations: SignalTable<BatchConfiguration>
    private let pendingConfigurations = Mutex<SignalTable<BatchConfiguration>?>(nil)
    /// Bumped by `update` (release); the drain thread compares it with `seenVersion` (acquire) each loop.
    private let configurationVersion = Atomic<Int>(0)
    @exclusivity(unchecked) private var seenVersion = 0
    /// By ``RouteSlot``: records of different routes are never batched together.
    let builders: [BatchBuilder]
    let routeNames: [String?]
    /// Per signal, across routes: monotonic within the pipeline.
    @exclusivity(unchecked) var sequences = SignalTable<UInt64>(traces: 0, logs: 0, metrics: 0)
    private let inFlight = SignalTable { _ in InFlightCounter() }
    /// How many requests of each signal may be under way (shared with the transport stage, which feeds it).
    private let windows: ExportWindows
    private let parker = ThreadParker()
    private let stopRequested = Atomic<Bool>(false)
    /// Set when shutdown begins: a producer blocked on a full ring gives up at once.
    private let closing = Atomic<Bool>(false)
    private let abandonRequested = Atomic<Bool>(false)
    private let exited = Atomic<Bool>(false)
    /// Callers of ``forceFlush()`` waiting for the drain thread. `closed` once the thread has
    /// exited: a later caller returns at once instead of waiting for a thread that is gone.
    private let flushWaiters = Mutex<FlushWaiters>(FlushWaiters())
    @exclusivity(unchecked) private var scopes: [[UInt8]] = []
    private let logger: Logger
    /// The overflow valve opens when this many bytes wait unread: half the configured
    /// `ringCapacity` (a ring file is larger by what exports hold, and opens at the same point).
    private let valveBytes: Int
    /// How long the drain thread parks after each pass (``DrainPacing``).
    @exclusivity(unchecked) private var pacing: DrainPacing

    /// Takes over `ring` and starts the drain thread.
    init(
        ring: Ring, configuration: PipelineConfiguration, routes: RouteTable, scopes: ScopeRegistry, resource: [UInt8], ledger: Ledger,
        tasks: ExportTasks, windows: ExportWindows, destination: (any FailureDestination)?, destinations: [DestinationStack] = [],
        logger: Logger
    ) {
        fanOut = destinations.isEmpty ? nil : DestinationFanOut(stacks: destinations, configuration: configuration, parker: parker)
        self.ring = ring
        self.releaser = ring.isFileBacked ? RingReleaser(ring: ring) : nil
        self.valveBytes = min(configuration.ringCapacity, ring.capacity) / 2
        self.pacing = DrainPacing(ringCapacity: ring.capacity)
        (self.syncer, self.syncTimeouts) = Self.groupCommit(ring: ring, routes: configuration.routes)
        self.windows = windows
        self.ledger = ledger
        self.tasks = tasks
        self.destination = destination
        self.scopeRegistry = scopes
        self.resource = resource
        self.logger = logger
        func nanos(_ policy: OverflowPolicy) -> UInt64? {
            if case .block(let t) = policy { return UInt64(clamping: t.nanoseconds) }
            return nil
        }
        self.blockNanos =
            [nanos(configuration.overflowPolicy)] + configuration.routes.map { nanos($0.overflowPolicy ?? configuration.overflowPolicy) }
        let (traces, logs) = (configuration.traces, configuration.logs)
        // Metrics never pass through the ring: their entry is never read.
        self.configurations = SignalTable(traces: traces, logs: logs, metrics: .logsDefault)
        let routeCount = routes.routes.count + 1
        self.routeNames = (0..<routeCount).map { routes.name($0) }
        self.builders = (0..<RouteSlot.count(routes: routeCount)).map { index in
            // The default route's builders are sized for full batches; the others grow as needed.
            let expected = index < 2 ? (index == 0 ? traces : logs).maxExportBatchSize * 512 : 4096
            return BatchBuilder(signal: RouteSlot.signal(index), route: RouteSlot.route(index), expectedBytes: expected)
        }
        startThread(name: "spillway-drain") { [self] in run() }
    }

    var queueUsage: (bytesInUse: Int, capacity: Int) { (ring.bytesInUse, ring.capacity) }
    var maximumRecordLength: Int { ring.maximumRecordLength }

    // MARK: Producers

    @inline(__always)
    func submit(_ record: UnsafeRawBufferPointer, type: Int32) -> EmitResult {
        if let syncer, let timeout = syncTimeouts[type.recordRoute] { return submitDurably(record, type: type, syncer, timeout) }
        return write(record, type: type)
    }

    /// Copies the record into the ring; a full ring applies the route's overflow policy.
    @inline(__always)
    func write(_ record: UnsafeRawBufferPointer, type: Int32) -> EmitResult {
        switch ring.tryWrite(type: type, from: record.baseAddress!, length: record.count) {
        case .written: return .queued
        case .tooLarge:
            return drop(
                type: type, .recordTooLarge,
                detail: "a record of \(record.count) bytes exceeds the ring's maximum of \(ring.maximumRecordLength)")
        case .full:
            if let nanos = blockNanos[type.recordRoute], blockUntilWritten(record, type: type, nanoseconds: nanos) { return .queued }
            return drop(type: type, .ringFull, detail: "the ring (\(ring.capacity) bytes) is full")
        }
    }

    /// The `.block(upTo:)` policy: wake the drain thread, then retry with short sleeps.
    @inline(never)
    private func blockUntilWritten(_ record: UnsafeRawBufferPointer, type: Int32, nanoseconds: UInt64) -> Bool {
        let deadline = monotonicNanos() &+ nanoseconds
        var pause: Int = 1_000
        while true {
            parker.unpark()
            var ts = timespec(tv_sec: 0, tv_nsec: pause)
            nanosleep(&ts, nil)
            switch ring.tryWrite(type: type, from: record.baseAddress!, length: record.count) {
            case .written: return true
            case .full, .tooLarge: break
            }
            if closing.load(ordering: .relaxed) || monotonicNanos() >= deadline { return false }
            pause = min(pause * 2, 200_000)
        }
    }

    /// Counts one record dropped at intake; the monitor reports it to the handlers.
    @inline(never)
    private func drop(type: Int32, _ reason: DropReason, detail: @autoclosure () -> String) -> EmitResult {
        ledger.droppedAtIntake(type: type, reason, detail: detail())
        return .dropped(reason)
    }

    /// New batch sizes and delays, taken by the drain thread at its next loop (live reconfiguration).
    /// A batch being filled keeps its deadline; the new size applies from the next record.
    func update(traces: BatchConfiguration, logs: BatchConfiguration) {
        pendingConfigurations.withLock { $0 = SignalTable(traces: traces, logs: logs, metrics: .logsDefault) }
        windows.traces.update(traces)
        windows.logs.update(logs)
        configurationVersion.add(1, ordering: .releasing)  // pairs with the acquiring load in run()
        parker.unpark()
    }

    /// Returns when every record committed before the call has been exported or dropped.
    func forceFlush() async {
        let target = ring.tailPosition
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
    private func stop(abandon: Bool) {
        if abandon { abandonRequested.store(true, ordering: .relaxed) }
        stopRequested.store(true, ordering: .relaxed)
        parker.unpark()
    }

    // MARK: The drain thread

    /// Parks the drain thread for `nanoseconds`, at most until the nearest batch is due (and at least 10 µs).
    private func park(_ nanoseconds: UInt64, now: UInt64) {
        var sleep = nanoseconds
        for builder in builders where !builder.isEmpty { sleep = min(sleep, builder.deadline &- min(now, builder.deadline)) }
        parker.park(nanoseconds: max(sleep, 10_000))
    }

    private func run() {
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
            if stopRequested.load(ordering: .relaxed) && ring.unreadBytes == 0 && builders.allSatisfy(\.isEmpty) {
                waitForExports()
                break
            }
            if drained == 0 {
                releaser?.releaseIdle()
                releaser?.relocatePinned()
            }
            if let nanoseconds = pacing.park(afterDraining: drained) { park(nanoseconds, now: now) }
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
        var taken = Taken()
        let n = ring.drain(maxBytes: 1 << 20) { type, payload, position in
            if let batch = recoveredBatch(type: type, payload, at: position) {
                taken.book(ledger)
                return dispatch(route: batch.route, signal: batch.signal, bytes: batch.batch.body.count) { batch.batch }
            }
            guard let builder = take(type: type, payload, at: position, into: &taken) else { return }
            if builder.count >= configurations[builder.signal].maxExportBatchSize {
                taken.book(ledger)
                dispatch(builder)
            }
        }
        taken.book(ledger)
        releaser?.relocatePinned()
        return n
    }

    private func dispatch(_ builder: BatchBuilder) {
        dispatch(route: builder.route, signal: builder.signal, bytes: builder.stagedBytes) { build(builder) }
    }

    /// Sends the batch `make` builds (of `bytes`) when its signal has a free export slot: to the
    /// route's destinations, and to the pipeline's exporter unless the route leaves it out.
    private func dispatch(route: Int, signal: TelemetrySignal, bytes staged: Int, _ make: () -> ExportBatch) {
        if let fanOut, !fanOut.sendsToPipeline(route: route) {
            let batch = make()
            fanOut.send(batch, route: route)
            ledger.forwarded(batch)
            return
        }
        let (counter, window) = (inFlight[signal], windows[signal])
        let budget = configurations[signal].maxBytesInFlight
        // A slot is free when the window has room and the bodies under way leave room for this
        // one (one request may always go, however large).
        func hasRoom() -> Bool {
            let requests = counter.value.load(ordering: .acquiring)  // pairs with the releasing subtract below
            return requests < window.limit
                && (requests == 0 || counter.bytes.load(ordering: .relaxed) + staged <= budget)
        }
        var waited = false
        while !hasRoom() {
            waited = true
            if abandonRequested.load(ordering: .relaxed) { return }
            // With a spill store, a ring that fills while every export slot is busy (retries
            // waiting out a backoff or a Retry-After, a slow collector) overflows to disk instead
            // of dropping: the batch is spilled now and replayed later.
            if let destination, ring.unreadBytes >= valveBytes || ring.bytesInUse * 2 >= ring.capacity {
                window.dispatched(waited: true)
                let batch = make()
                fanOut?.send(batch, route: route)
                spillUnderPressure(batch, to: destination)
                return
            }
            releaser?.relocatePinned()
            parker.park(nanoseconds: 1_000_000)
        }
        window.dispatched(waited: waited)
        let batch = make()
        fanOut?.send(batch, route: route)
        let bytes = batch.body.count
        counter.bytes.add(bytes, ordering: .relaxed)
        counter.value.add(1, ordering: .relaxed)
        let (tasks, parker) = (self.tasks, self.parker)
        tasks.start {
            _ = await tasks.export(batch)
            counter.bytes.subtract(bytes, ordering: .relaxed)
            counter.value.subtract(1, ordering: .releasing)  // pairs with the acquiring load in hasRoom()
            parker.unpark()
        }
    }

    /// The request of what `builder` holds (which it then forgets), numbered in its signal's sequence.
    func build(_ builder: BatchBuilder) -> ExportBatch {
        if scopes.count < scopeRegistry.count { scopes = scopeRegistry.snapshot() }
        let hold = releaser.map { RingHold($0, id: builder.holdID) }
        var batch = builder.build(resource: resource, scopes: scopes)
        if let releaser, let hold {
            batch.ringHold = hold
            releaser.attach(hold.id, .init(body: batch.body, records: batch.recordCount, signal: builder.signal, route: builder.route))
        }
        batch.route = routeNames[builder.route]
        batch.sequence = sequences[builder.signal]
        sequences[builder.signal] += 1
        return batch
    }

    private func flush() {
        let target = flushWaiters.withLock { $0.list.map(\.target).max() ?? 0 }
        while ring.readPosition < target && !abandonRequested.load(ordering: .relaxed) {
            if drainOnce() > 0 { continue }
            // A producer is between claim and commit (a memcpy): wait for it. Nothing may take
            // its space back, since it may still write there; shutdown's deadline bounds the wait.
            parker.park(nanoseconds: 100_000)
        }
        for builder in builders where !builder.isEmpty { dispatch(builder) }
        waitForExports()
        let read = ring.readPosition
        let done = flushWaiters.withLock { waiters in
            let done = waiters.list.filter { $0.target <= read }
            waiters.list.removeAll { $0.target <= read }
            return done
        }
        for waiter in done { waiter.continuation.resume() }
    }

    private func waitForExports() {
        while (inFlight.values.contains(where: { $0.value.load(ordering: .acquiring) > 0 }) || fanOut?.busy == true)
            && !abandonRequested.load(ordering: .relaxed)
        {
            parker.park(nanoseconds: 1_000_000)
        }
    }

    /// The drain thread's overflow valve: every export slot is busy and the ring is half full (see ``valveBytes``), so
    /// the batch goes to the failure destination now instead of waiting (and the ring dropping records).
    private func spillUnderPressure(_ batch: ExportBatch, to destination: any FailureDestination) {
        let message = "every export slot was busy and the ring was half full: spilled instead of waiting"
        keep(batch, in: destination, ResilienceError(code: .ringFull, message: message), kind: .overflow)
    }

    /// Hands `batch` to `destination` and books where it went, or the drop when it could not be kept.
    @discardableResult
    func keep(_ batch: ExportBatch, in destination: any FailureDestination, _ error: ResilienceError, kind: ExportFailureKind)
        -> Bool
    {
        destination.keep(batch, booking: ledger, error, kind: kind) == true
    }

    // MARK: Shutdown

    func shutdown(deadline: ContinuousClock.Instant) async -> Bool {
        closing.store(true, ordering: .relaxed)
        let flushed = FlagBox()
        let flush = Task {
            await forceFlush()
            flushed.value.store(true, ordering: .releasing)
        }
        var exceeded = false
        while !flushed.value.load(ordering: .acquiring) {
            if ContinuousClock.now >= deadline {
                exceeded = true
                break
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
        if exceeded {
            tasks.cancelAll()
            fanOut?.cancelAll()
        }
        stop(abandon: exceeded)
        while !exited.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(1)) }
        _ = await flush.value
        syncer?.stop()
        if let destination {
            let spilled = spillRemaining(to: destination)
            if spilled > 0 { logger.notice("shutdown deadline passed: \(spilled) records were kept by \(destination)") }
        }
        let dropped = dropRemaining(reason: .shutdown)
        if dropped > 0 {
            logger.warning("shutdown deadline passed: \(dropped) records were not exported (counted as dropped: shutdown)")
        }
        return exceeded
    }

    func abandon() {
        closing.store(true, ordering: .relaxed)
        stop(abandon: true)
        syncer?.stop()
    }
}
