import Synchronization

/// Interns instrumentation scopes: each (name, version) gets a small index that travels in the
/// ring record's type, and its `InstrumentationScope` bytes are encoded once.
final class ScopeRegistry: Sendable {
    private struct Key: Hashable { var name: String; var version: String? }
    private struct State { var indices: [Key: Int] = [:]; var encoded: [[UInt8]] = [] }
    private let state = Mutex(State())

    /// At most 2^16 scopes: the index shares the ring record type with the signal and the route.
    static let maximumScopes = 1 << 16

    func index(name: String, version: String?) -> Int {
        state.withLock { state in
            let key = Key(name: name, version: version)
            if let index = state.indices[key] { return index }
            precondition(state.encoded.count < Self.maximumScopes, "more than \(Self.maximumScopes) instrumentation scopes")
            state.encoded.append(ResourceEncoding.encodeScope(name: name, version: version))
            state.indices[key] = state.encoded.count - 1
            return state.encoded.count - 1
        }
    }

    /// Every scope's encoded bytes, by index.
    func snapshot() -> [[UInt8]] { state.withLock { $0.encoded } }

    var count: Int { state.withLock { $0.encoded.count } }
}

/// The ring record type: the signal in bits 24–27, the route in bits 16–23, the scope index
/// below. Always > 0.
@inline(__always)
func recordType(signal: TelemetrySignal, route: Int = 0, scope: Int) -> Int32 {
    Int32(signal.rawValue) << 24 | Int32(route) << 16 | Int32(scope)
}

extension Int32 {
    /// The signal part of a record type (1 traces, 2 logs).
    @inline(__always) var recordSignal: Int { Int(self >> 24) }
    /// The route part of a record type (0: the default route).
    @inline(__always) var recordRoute: Int { Int((self >> 16) & 0xFF) }
    /// The scope part of a record type.
    @inline(__always) var recordScope: Int { Int(self & 0xFFFF) }
    /// The same record type with another route.
    @inline(__always) func withRoute(_ route: Int) -> Int32 { self & ~0x00FF_0000 | Int32(route) << 16 }
}
