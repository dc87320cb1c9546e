import Logging
import Synchronization

/// Delivers ``ExportFailureEvent``s to the handlers on a thread of its own, and to the stream.
///
/// ``send(_:)`` never blocks and never calls a handler: it appends to two bounded queues — the
/// handlers' and, once somebody asked for ``stream``, the stream's — and wakes the handler
/// thread. Each queue keeps the newest ``capacity`` events, and the failed batches its events
/// carry add up to at most ``batchBudget`` bytes: past that an event is queued without its batch
/// (``ExportFailureEvent/isBatchOmitted``), so a pipeline that spills a dead collector's traffic
/// does not also keep that traffic in memory. A batch is released once the handler returned (or
/// the stream's consumer took the event). A handler that blocks forever holds that thread only;
/// exports go on, and what the queues lose is counted.
final class ExportEventDispatcher: @unchecked Sendable {
    static let capacity = 4096
    /// Bytes of failed batches an events queue may hold.
    static let batchBudget = 8 << 20

    private let handlerQueue = BoundedEventQueue(capacity: capacity, batchBudget: batchBudget)
    private let handlerThread = Mutex<(started: Bool, stopped: Bool)>((false, false))
    private let parker = ThreadParker()
    private let handlers: Mutex<(fallback: (any ExportErrorHandler)?, routes: [String: any ExportErrorHandler])>
    private let logger: Logger
    private let streamQueue = Mutex<BoundedEventQueue?>(nil)

    /// Events sent.
    let sent = Atomic<Int>(0)
    /// Events a queue had to discard (the newest are kept).
    let lost = Atomic<Int>(0)
    /// Events queued without their batch because the batch budget was spent.
    let batchesOmitted = Atomic<Int>(0)
    /// Handler calls that threw.
    let handlerErrors = Atomic<Int>(0)
    /// Handler calls made.
    let delivered = Atomic<Int>(0)

    init(defaultHandler: (any ExportErrorHandler)?, routeHandlers: [String: any ExportErrorHandler], logger: Logger) {
        self.handlers = Mutex((defaultHandler, routeHandlers))
        self.logger = logger
    }

    /// The events from the first call on, for one consumer: the first call subscribes, later
    /// calls return a stream over the same queue. It ends when the pipeline is released.
    var stream: AsyncStream<ExportFailureEvent> {
        let queue = streamQueue.withLock { queue in
            if let queue { return queue }
            let made = BoundedEventQueue(capacity: Self.capacity, batchBudget: Self.batchBudget)
            if handlerThread.withLock({ $0.stopped }) { made.finish() }
            queue = made
            return made
        }
        return AsyncStream(unfolding: { await queue.next() }, onCancel: { queue.finish() })
    }

    /// Replaces the handlers (live reconfiguration); events already queued go to the new ones.
    func update(defaultHandler: (any ExportErrorHandler)?, routeHandlers: [String: any ExportErrorHandler]) {
        handlers.withLock { $0 = (defaultHandler, routeHandlers) }
    }

    private func handler(for route: String?) -> (any ExportErrorHandler)? {
        handlers.withLock { handlers in
            if let route, let handler = handlers.routes[route] { return handler }
            return handlers.fallback
        }
    }

    func send(_ event: ExportFailureEvent) {
        sent.add(1, ordering: .relaxed)
        if let queue = streamQueue.withLock({ $0 }) { note(queue.push(event)) }
        guard handler(for: event.route) != nil else { return }
        let start = handlerThread.withLock { state -> Bool? in
            guard !state.stopped else { return nil }
            defer { state.started = true }
            return !state.started
        }
        guard let start else { return }
        note(handlerQueue.push(event))
        if start { Resilience.startThread(name: "spillway-handlers") { [self] in run() } }
        parker.unpark()
    }

    private func note(_ result: BoundedEventQueue.PushResult) {
        if result.evicted { lost.add(1, ordering: .relaxed) }
        if result.omittedBatch { batchesOmitted.add(1, ordering: .relaxed) }
    }

    /// Ends the stream; the handler thread ends once its queue is empty.
    func stop() {
        handlerThread.withLock { $0.stopped = true }
        streamQueue.withLock { $0 }?.finish()
        parker.unpark()
    }

    private func run() {
        while true {
            guard let event = handlerQueue.pop() else {
                if handlerThread.withLock({ $0.stopped }) { return }
                parker.park(nanoseconds: 100_000_000)
                continue
            }
            if let handler = handler(for: event.route) {
                do {
                    try handler.handleExportError(event)
                } catch {
                    if handlerErrors.add(1, ordering: .relaxed).oldValue == 0 {
                        logger.error("an export error handler threw (further throws are only counted): \(error)")
                    }
                }
                delivered.add(1, ordering: .relaxed)
            }
            handlerQueue.release(event)
        }
    }
}

/// A queue of events that keeps the newest `capacity`, and whose events' batches add up to at
/// most `batchBudget` bytes (the bytes of an event count from its push until ``release(_:)``,
/// or until it is taken by ``next()``).
final class BoundedEventQueue: Sendable {
    struct PushResult { var evicted = false, omittedBatch = false }

    private struct State {
        /// Slots before `head` are taken (nil).
        var events: [ExportFailureEvent?] = []
        var head = 0
        var bytes = 0
        var finished = false
        var waiter: CheckedContinuation<ExportFailureEvent?, Never>?
    }

    private let state = Mutex(State())
    private let capacity: Int
    private let batchBudget: Int

    init(capacity: Int, batchBudget: Int) {
        self.capacity = capacity
        self.batchBudget = batchBudget
    }

    func push(_ event: ExportFailureEvent) -> PushResult {
        var event = event
        var result = PushResult()
        let waiter = state.withLock { state -> CheckedContinuation<ExportFailureEvent?, Never>? in
            guard !state.finished else { return nil }
            let size = event.batch?.body.count ?? 0
            if size > 0 && state.bytes + size > batchBudget {
                event.batch = nil
                event.isBatchOmitted = true
                result.omittedBatch = true
            } else {
                state.bytes += size
            }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            if state.events.count - state.head >= capacity {
                state.bytes -= state.events[state.head]?.batch?.body.count ?? 0
                state.events[state.head] = nil
                state.head += 1
                result.evicted = true
            }
            state.events.append(event)
            if state.head > 1024 && state.head * 2 > state.events.count {
                state.events.removeFirst(state.head)
                state.head = 0
            }
            return nil
        }
        if let waiter {
            // Handed over at once: its bytes were never held.
            state.withLock { $0.bytes -= event.batch?.body.count ?? 0 }
            waiter.resume(returning: event)
        }
        return result
    }

    /// The oldest event, or `nil` when empty. Its bytes count until ``release(_:)``.
    func pop() -> ExportFailureEvent? {
        state.withLock { state in
            guard state.head < state.events.count else {
                state.events.removeAll(keepingCapacity: state.events.count <= 64)
                state.head = 0
                return nil
            }
            let event = state.events[state.head]
            state.events[state.head] = nil
            state.head += 1
            return event
        }
    }

    /// The consumer is done with `event`: its batch no longer counts.
    func release(_ event: ExportFailureEvent) {
        guard let size = event.batch?.body.count, size > 0 else { return }
        state.withLock { $0.bytes -= size }
    }

    /// The next event, waiting for one; `nil` once finished.
    func next() async -> ExportFailureEvent? {
        if let event = pop() {
            release(event)
            return event
        }
        return await withCheckedContinuation { (continuation: CheckedContinuation<ExportFailureEvent?, Never>) in
            let ready = state.withLock { state -> ExportFailureEvent?? in
                if state.head < state.events.count, let event = state.events[state.head] {
                    state.events[state.head] = nil
                    state.head += 1
                    state.bytes -= event.batch?.body.count ?? 0
                    return .some(event)
                }
                if state.finished { return .some(nil) }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Ends the queue: pending events are dropped, a waiting consumer gets `nil`.
    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<ExportFailureEvent?, Never>? in
            state.finished = true
            state.events.removeAll()
            state.head = 0
            state.bytes = 0
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}
