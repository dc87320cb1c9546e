import Synchronization

/// The innermost stage when the pipeline built its own OTLP exporter: lets
/// ``TelemetryPipeline/reconfigure(_:)`` replace it while batches are in flight.
///
/// An attempt that started on the old exporter finishes on it; every attempt that starts after
/// the switch (new batches, retries, replays) uses the new one. The old exporter is shut down
/// when its last attempt has finished. Thread-safety: safe from any thread.
final class SwitchableExporter: TelemetryExporter {
    private final class Generation: Sendable {
        let exporter: any TelemetryExporter
        let inFlight = Atomic<Int>(0)
        let retired = Atomic<Bool>(false)
        let closed = Atomic<Bool>(false)
        init(_ exporter: any TelemetryExporter) { self.exporter = exporter }

        /// Shuts the exporter down once it is retired and idle; exactly once.
        func closeIfIdle() async {
            guard retired.load(ordering: .acquiring), inFlight.load(ordering: .acquiring) == 0 else { return }
            guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
            await exporter.shutdown()
        }
    }

    private let current: Mutex<Generation>
    let name: String

    init(_ exporter: any TelemetryExporter) {
        self.current = Mutex(Generation(exporter))
        self.name = exporter.name
    }

    /// The exporter attempts use now.
    var exporter: any TelemetryExporter { current.withLock { $0.exporter } }

    func export(_ batch: ExportBatch) async throws -> ExportResponse {
        let generation = current.withLock { generation in
            generation.inFlight.add(1, ordering: .relaxed)  // under the lock: a switch sees it before retiring
            return generation
        }
        defer {
            generation.inFlight.subtract(1, ordering: .releasing)  // pairs with the acquiring load in closeIfIdle
            if generation.retired.load(ordering: .acquiring) { Task { await generation.closeIfIdle() } }
        }
        return try await generation.exporter.export(batch)
    }

    /// Makes `exporter` the one new attempts use; the old one closes when its attempts finish.
    func replace(with exporter: any TelemetryExporter) async {
        let old = current.withLock { current in
            let old = current
            current = Generation(exporter)
            return old
        }
        old.retired.store(true, ordering: .releasing)  // pairs with the acquiring loads in export's defer and closeIfIdle
        await old.closeIfIdle()
    }

    func shutdown() async {
        let generation = current.withLock { $0 }
        generation.retired.store(true, ordering: .releasing)
        await generation.exporter.shutdown()
        _ = generation.closed.exchange(true, ordering: .relaxed)
    }
}
