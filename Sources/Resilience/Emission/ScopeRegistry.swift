import Synchronization

/// Interns instrumentation scopes: each (name, version) gets a small index that travels in the
/// ring record's type, and its `InstrumentationScope` bytes are encoded once.
final class ScopeRegistry: Sendable {
    private struct Key: Hashable {
        var name: String
        var version: String?
    }
    private struct State {
        var indices: [Key: Int] = [:]
        var encoded: [[UInt8]] = []
    }
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
