/// What shutdown does with the records the drain thread did not export: kept by the failure
/// destination (and each route's other destinations), or counted as dropped.
extension BatchProcessor {
    /// After the thread exited: what is left in the builders and the ring goes to the failure
    /// destination (shutdown "spills the rest"). Returns the records kept; what it refuses is
    /// dropped (`disk_full`, `spill_failed`) and reported.
    func spillRemaining(to destination: any FailureDestination) -> Int {
        var spilled = 0
        let error = ResilienceError(code: .shutDown, message: "not exported by the shutdown deadline")
        func spill(_ builder: BatchBuilder) {
            guard !builder.isEmpty else { return }
            let batch = build(builder)
            if let fanOut {
                fanOut.keep(batch, route: builder.route)
                guard fanOut.sendsToPipeline(route: builder.route) else { return ledger.forwarded(batch) }
            }
            if keep(batch, in: destination, error, kind: .shutdown) { spilled += batch.recordCount }
        }
        for builder in builders { spill(builder) }
        var taken = Taken()
        while ring.drain(
            maxBytes: 1 << 20,
            { type, payload, position in
                if let recovered = recoveredBatch(type: type, payload, at: position) {
                    if keep(recovered.batch, in: destination, error, kind: .shutdown) { spilled += recovered.batch.recordCount }
                    return
                }
                guard let builder = take(type: type, payload, at: position, into: &taken) else { return }
                if builder.count >= configurations[builder.signal].maxExportBatchSize {
                    taken.book(ledger)
                    spill(builder)
                }
            }) > 0
        {}
        taken.book(ledger)
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
        while ring.drain(
            maxBytes: 1 << 20,
            { type, payload, position in
                if let recovered = recoveredBatch(type: type, payload, at: position) {
                    ledger.dropped(
                        recovered.batch, reason, attempt: 0, error: ResilienceError(code: .shutDown, message: "shutdown"), kind: .shutdown)
                    dropped += recovered.batch.recordCount
                    return
                }
                guard let slot = RouteSlot.index(of: type) else { return }
                let signal = RouteSlot.signal(slot)
                if position < ring.recoveredEnd { ledger.recoveredFromRing(signal, 1) } else { ledger.accepted(signal, 1) }
                ledger.droppedInside(signal: signal, route: type.recordRoute, reason, 1)
                dropped += 1
            }) > 0
        {}
        releaser?.releaseIdle()
        return dropped
    }
}
