/// One value per signal, indexed by the signal itself: no `signal.rawValue - 1` arithmetic at the
/// call sites. A value type; its thread-safety is its values'.
struct SignalTable<Value> {
    var traces: Value
    var logs: Value
    var metrics: Value

    init(traces: Value, logs: Value, metrics: Value) {
        self.traces = traces
        self.logs = logs
        self.metrics = metrics
    }

    /// A table whose value for each signal is `make(signal)`.
    init(_ make: (TelemetrySignal) -> Value) {
        self.init(traces: make(.traces), logs: make(.logs), metrics: make(.metrics))
    }

    subscript(signal: TelemetrySignal) -> Value {
        @inline(__always) get {
            switch signal {
            case .traces: traces
            case .logs: logs
            case .metrics: metrics
            }
        }
        @inline(__always) set {
            switch signal {
            case .traces: traces = newValue
            case .logs: logs = newValue
            case .metrics: metrics = newValue
            }
        }
    }

    /// Every value, in the order of ``TelemetrySignal/allCases``.
    var values: [Value] { [traces, logs, metrics] }
}

extension SignalTable: Sendable where Value: Sendable {}
extension SignalTable: Equatable where Value: Equatable {}
