/// What the drain thread does with each record it reads: into a builder (holding a file-backed
/// ring's space from the builder's first record on), or, for a request an earlier process
/// relocated in its ring file, straight out as a batch.
extension BatchProcessor {
    /// Records taken from the ring and not yet booked: accepted, or recovered from a ring file.
    struct Taken {
        var accepted = SignalTable<Int>(traces: 0, logs: 0, metrics: 0)
        var recovered = SignalTable<Int>(traces: 0, logs: 0, metrics: 0)

        mutating func book(_ ledger: Ledger) {
            for signal in [TelemetrySignal.traces, .logs] {
                ledger.accepted(signal, accepted[signal])
                ledger.recoveredFromRing(signal, recovered[signal])
            }
            self = Taken()
        }
    }

    /// Appends one record read from the ring at `position` to its builder (holding the ring from
    /// the builder's first record on), counted in `taken`; `nil` for a type this pipeline does not write.
    func take(type: Int32, _ payload: UnsafeRawBufferPointer, at position: UInt64, into taken: inout Taken) -> BatchBuilder? {
        guard let slot = RouteSlot.index(of: type), slot < builders.count else { return nil }
        let builder = builders[slot]
        if builder.isEmpty {
            builder.deadline = monotonicNanos() &+ UInt64(configurations[builder.signal].scheduleDelay.nanoseconds)
            if let releaser { builder.holdID = releaser.hold(position) }
        }
        builder.append(scope: type.recordScope, payload)
        if position < ring.recoveredEnd { taken.recovered[builder.signal] += 1 } else { taken.accepted[builder.signal] += 1 }
        return builder
    }

    /// A request an earlier process had relocated in its ring file (``RingReleaser``), found in
    /// what this process recovered: booked as recovered and holding its place, to be sent as it
    /// is. `nil` for any other record (a relocated request of this process is in flight already).
    ///
    /// The type test is inlined into the drain loop: called for every record, the whole function
    /// cost the drain thread ~35 instructions a record.
    @inline(__always)
    func recoveredBatch(type: Int32, _ payload: UnsafeRawBufferPointer, at position: UInt64) -> (
        batch: ExportBatch, route: Int, signal: TelemetrySignal
    )? {
        guard let signal = type.relocatedBatchSignal else { return nil }
        return relocatedBatch(signal: signal, type: type, payload, at: position)
    }

    @inline(never)
    private func relocatedBatch(signal: TelemetrySignal, type: Int32, _ payload: UnsafeRawBufferPointer, at position: UInt64) -> (
        batch: ExportBatch, route: Int, signal: TelemetrySignal
    )? {
        guard position < ring.recoveredEnd, payload.count >= 4, let releaser else { return nil }
        let records = Int(UInt32(littleEndian: payload.loadUnaligned(as: UInt32.self)))
        let route = type.recordRoute < routeNames.count ? type.recordRoute : 0
        var batch = ExportBatch(signal: signal, body: Array(payload[4...]), recordCount: records, sequence: sequences[signal])
        sequences[signal] += 1
        batch.route = routeNames[route]
        let id = releaser.hold(position)
        batch.ringHold = RingHold(releaser, id: id)
        releaser.attach(id, .init(body: batch.body, records: records, signal: signal, route: route))
        ledger.recoveredFromRing(signal, records)
        return (batch, route, signal)
    }
}
