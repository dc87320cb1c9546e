import Logging
import Synchronization

/// Delivers ``ExportFailureEvent``s to the handlers on a thread of its own, and to the stream.
///
/// ``send(_:)`` never blocks and never calls a handler: it feeds the `AsyncStream` (which keeps
/// the newest events) and appends to a bounded queue (which keeps the newest 4096), then wakes
/// the handler thread. A handler that blocks forever holds that thread only; exports go on, and
/// what the queue loses is counted.
final class ExportEventDispatcher: @unchecked Sendable {
    static let capacity = 4096

    private struct State {
        var queue: [ExportFailureEvent] = []
        var head = 0
        var stopped = false
        var threadStarted = false
    }

    private let state = Mutex(State())
    private let parker = ThreadParker()
    private let handlers: Mutex<(fallback: (any ExportErrorHandler)?, routes: [String: any ExportErrorHandler])>
    private let logger: Logger
    let stream: AsyncStream<ExportFailureEvent>
    private let continuation: AsyncStream<ExportFailureEvent>.Continuation

    /// Events sent.
    let sent = Atomic<Int>(0)
    /// Events the handler queue or the stream had to discard (the newest are kept).
    let lost = Atomic<Int>(0)
    /// Handler calls that threw.
    let handlerErrors = Atomic<Int>(0)
    /// Handler calls made.
    let delivered = Atomic<Int>(0)

    init(defaultHandler: (any ExportErrorHandler)?, routeHandlers: [String: any ExportErrorHandler], logger: Logger) {
        self.handlers = Mutex((defaultHandler, routeHandlers))
        self.logger = logger
        (stream, continuation) = AsyncStream.makeStream(of: ExportFailureEvent.self, bufferingPolicy: .bufferingNewest(Self.capacity))
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
        if case .dropped = continuation.yield(event) { lost.add(1, ordering: .relaxed) }
        guard handler(for: event.route) != nil else { return }
        let startThread = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            if state.queue.count - state.head >= Self.capacity {
                state.head += 1  // keep the newest
                lost.add(1, ordering: .relaxed)
            }
            state.queue.append(event)
            defer { state.threadStarted = true }
            return !state.threadStarted
        }
        if startThread { Resilience.startThread(name: "spillway-handlers") { [self] in run() } }
        parker.unpark()
    }

    /// Ends the stream; the handler thread ends once its queue is empty.
    func stop() {
        continuation.finish()
        state.withLock { $0.stopped = true }
        parker.unpark()
    }

    private func run() {
        while true {
            let (batch, stopped) = state.withLock { state -> ([ExportFailureEvent], Bool) in
                let batch = Array(state.queue[state.head...])
                state.queue.removeAll(keepingCapacity: true)
                state.head = 0
                return (batch, state.stopped)
            }
            for event in batch {
                guard let handler = handler(for: event.route) else { continue }
                do {
                    try handler.handleExportError(event)
                } catch {
                    if handlerErrors.add(1, ordering: .relaxed).oldValue == 0 {
                        logger.error("an export error handler threw (further throws are only counted): \(error)")
                    }
                }
                delivered.add(1, ordering: .relaxed)
            }
            if batch.isEmpty {
                if stopped { return }
                parker.park(nanoseconds: 100_000_000)
            }
        }
    }
}
