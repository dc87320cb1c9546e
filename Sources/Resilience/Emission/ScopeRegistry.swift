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
    /// With a ring file: where a new scope is written before any record of it reaches the ring.
    private let journal: RingJournal?

    /// A registry that starts with `seeds` at their indices (a recovered ring's scopes, already
    /// in `journal`) and writes each new scope to `journal`.
    init(seeds: [(name: String, version: String?)] = [], journal: RingJournal? = nil) {
        self.journal = journal
        state.withLock { state in
            for seed in seeds.prefix(Self.maximumScopes) {
                state.encoded.append(ResourceEncoding.encodeScope(name: seed.name, version: seed.version))
                let key = Key(name: seed.name, version: seed.version)
                if state.indices[key] == nil { state.indices[key] = state.encoded.count - 1 }
            }
        }
    }

    /// At most 2^16 scopes: the index shares the ring record type with the signal and the route.
    static let maximumScopes = 1 << 16

    func index(name: String, version: String?) -> Int {
        state.withLock { state in
            let key = Key(name: name, version: version)
            if let index = state.indices[key] { return index }
            precondition(state.encoded.count < Self.maximumScopes, "more than \(Self.maximumScopes) instrumentation scopes")
            state.encoded.append(ResourceEncoding.encodeScope(name: name, version: version))
            state.indices[key] = state.encoded.count - 1
            journal?.appendScope(index: state.encoded.count - 1, name: name, version: version)
            return state.encoded.count - 1
        }
    }

    /// Every scope's encoded bytes, by index.
    func snapshot() -> [[UInt8]] { state.withLock { $0.encoded } }

    var count: Int { state.withLock { $0.encoded.count } }
}
