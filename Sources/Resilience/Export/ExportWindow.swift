import Synchronization

/// The adaptive window of one signal (``ExportWindowStateMachine``), shared by the drain thread
/// that dispatches batches and the transport stage that sees every answer.
///
/// Thread-safety: safe from any thread. The drain thread reads ``limit`` with one atomic load.
final class ExportWindow: Sendable {
    private let machine: Mutex<ExportWindowStateMachine>
    private let currentLimit: Atomic<Int>
    private let currentPeak: Atomic<Int>
    /// Whether the last dispatched batch had to wait for a free slot (set by the drain thread).
    private let waited = Atomic<Bool>(false)
    /// `false`: the window stays at its maximum (``BatchConfiguration/adaptiveConcurrency``).
    private let adaptive: Atomic<Bool>

    init(_ configuration: BatchConfiguration) {
        adaptive = Atomic(configuration.adaptiveConcurrency)
        let initial = configuration.adaptiveConcurrency ? Self.initial : configuration.maxConcurrentExports
        let machine = ExportWindowStateMachine(initial: initial, maximum: configuration.maxConcurrentExports)
        self.machine = Mutex(machine)
        currentLimit = Atomic(machine.limit)
        currentPeak = Atomic(machine.peak)
    }

    /// Where an adaptive window starts: the fixed number of earlier versions.
    static let initial = 2

    /// Requests allowed in flight now.
    var limit: Int { currentLimit.load(ordering: .relaxed) }
    /// The widest the window has been.
    var peak: Int { currentPeak.load(ordering: .relaxed) }

    /// Called by the drain thread for each batch it dispatches: whether it had to wait for a slot.
    func dispatched(waited: Bool) {
        if self.waited.load(ordering: .relaxed) != waited { self.waited.store(waited, ordering: .relaxed) }
    }

    /// An answer with success, `latency` after the request went out (connection set-up excluded).
    func succeeded(latency: Duration) {
        guard adaptive.load(ordering: .relaxed) else { return }
        let limited = waited.load(ordering: .relaxed)
        update { $0.succeeded(latency: latency, limited: limited, now: .nanoseconds(monotonicNanos())) }
    }

    /// A failed request, classified: the failures the OTLP rules retry (``ExportFailureKind/isRetryable``:
    /// transport, 429, 502–504) are the collector's strain; the others say nothing of its capacity.
    func failed(_ kind: ExportFailureKind) {
        guard adaptive.load(ordering: .relaxed), kind.isRetryable else { return }
        update { $0.failed(congestion: true, now: .nanoseconds(monotonicNanos())) }
    }

    /// A new configuration (live reconfiguration): the new ceiling applies at once; a window
    /// made fixed is its maximum, one made adaptive goes on from where it is.
    func update(_ configuration: BatchConfiguration) {
        adaptive.store(configuration.adaptiveConcurrency, ordering: .relaxed)
        update { machine in
            machine.setMaximum(configuration.maxConcurrentExports)
            if !configuration.adaptiveConcurrency {
                machine = ExportWindowStateMachine(initial: configuration.maxConcurrentExports, maximum: configuration.maxConcurrentExports)
            }
        }
    }

    private func update(_ body: (inout ExportWindowStateMachine) -> Void) {
        let (limit, peak) = machine.withLock { machine in
            body(&machine)
            return (machine.limit, machine.peak)
        }
        currentLimit.store(limit, ordering: .relaxed)
        if peak > currentPeak.load(ordering: .relaxed) { currentPeak.store(peak, ordering: .relaxed) }
    }
}

/// The export windows of a pipeline, one per signal.
typealias ExportWindows = SignalTable<ExportWindow>
