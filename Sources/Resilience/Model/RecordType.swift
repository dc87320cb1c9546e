/// The ring record type: the signal in bits 24–27, the route in bits 16–23, the scope index
/// below. Always > 0.
@inline(__always)
func recordType(signal: TelemetrySignal, route: Int = 0, scope: Int) -> Int32 {
    Int32(signal.rawValue) << 24 | Int32(route) << 16 | Int32(scope)
}

/// The ring record type of a whole request moved in the ring (``RingReleaser``'s relocation):
/// signal bits 5 (traces) or 6 (logs), the route, scope 0. Its payload is the request's record
/// count (4 bytes, little-endian) and the request body. The drain thread skips it, except in what
/// a ring file recovered: there it is sent as it is.
@inline(__always)
func relocatedBatchType(signal: TelemetrySignal, route: Int) -> Int32 {
    Int32(signal.rawValue + 4) << 24 | Int32(route) << 16
}

extension Int32 {
    /// The signal of a ``relocatedBatchType(signal:route:)``, or `nil` for any other type.
    @inline(__always) var relocatedBatchSignal: TelemetrySignal? {
        switch recordSignal {
        case 5: .traces
        case 6: .logs
        default: nil
        }
    }

    /// The signal part of a record type (1 traces, 2 logs).
    @inline(__always) var recordSignal: Int { Int(self >> 24) }
    /// The route part of a record type (0: the default route).
    @inline(__always) var recordRoute: Int { Int((self >> 16) & 0xFF) }
    /// The scope part of a record type.
    @inline(__always) var recordScope: Int { Int(self & 0xFFFF) }
    /// The same record type with another route.
    @inline(__always) func withRoute(_ route: Int) -> Int32 { self & ~0x00FF_0000 | Int32(route) << 16 }
}

/// Where a (route, signal) pair sits in the per-route tables (batch builders, intake tallies):
/// `route * 2 + signal index`. The layout is stated here only.
enum RouteSlot {
    /// The number of slots for `routes` routes (the default route included).
    @inline(__always) static func count(routes: Int) -> Int { routes * 2 }
    @inline(__always) static func index(route: Int, signal: TelemetrySignal) -> Int { route * 2 + signal.index }
    /// `nil` for a signal this pipeline does not write (a record type from elsewhere).
    @inline(__always) static func index(of type: Int32) -> Int? {
        let signal = type.recordSignal
        guard signal == 1 || signal == 2 else { return nil }
        return type.recordRoute * 2 + signal - 1
    }
    @inline(__always) static func route(_ index: Int) -> Int { index / 2 }
    @inline(__always) static func signal(_ index: Int) -> TelemetrySignal { index % 2 == 0 ? .traces : .logs }
}

extension TelemetrySignal {
    /// 0 for traces, 1 for logs, 2 for metrics: the index of per-signal arrays. (Metrics never
    /// pass through the ring, so ``RouteSlot`` has slots for traces and logs only.)
    @inline(__always) var index: Int { Int(rawValue) - 1 }
}
