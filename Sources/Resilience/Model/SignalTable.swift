/// One value per signal, indexed by the signal itself: no `signal.rawValue - 1` arithmetic at the
/// call sites. A value type; its thread-safety is its values'.
struct SignalTable<Value> {
    var traces: Value
    var logs: Value

    init(traces: Value, logs: Value) {
        self.traces = traces
        self.logs = logs
    }

    /// A table whose value for each signal is `make(signal)`.
    init(_ make: (TelemetrySignal) -> Value) {
        self.init(traces: make(.traces), logs: make(.logs))
    }

    subscript(signal: TelemetrySignal) -> Value {
        @inline(__always) get { signal == .traces ? traces : logs }
        @inline(__always) set {
            if signal == .traces { traces = newValue } else { logs = newValue }
        }
    }

    /// Both values, traces first.
    var values: [Value] { [traces, logs] }
}

extension SignalTable: Sendable where Value: Sendable {}
extension SignalTable: Equatable where Value: Equatable {}
