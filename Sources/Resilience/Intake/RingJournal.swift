import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The names a ring file's record types stand for: `ring.names` beside the ring file.
///
/// A record's type carries indices (its instrumentation scope in the ``ScopeRegistry``, its route
/// in the configuration), and indices mean nothing to the next process. The journal is appended
/// as they are made: one line per scope (`s`, index, name, version) before a record of it can
/// reach the ring, and one line of route names (`r`) per process. Recovery reads it back: the new
/// process registers the old scopes at their old indices, and renumbers the routes by name
/// (FORMAT.md "The ring file"). A torn last line (no newline) is ignored.
///
/// Thread-safety: ``appendScope(index:name:version:)`` from any thread (one `write` per line, under a lock).
final class RingJournal: Sendable {
    let path: String
    private let descriptor: Mutex<Int32>

    /// What a journal said: scopes by index, and the last route table.
    struct Contents: Equatable {
        var scopes: [(name: String, version: String?)] = []
        var routes: [String?] = [nil]

        static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.routes == rhs.routes && lhs.scopes.elementsEqual(rhs.scopes) { $0.name == $1.name && $0.version == $1.version }
        }
    }

    /// Opens `path` for appending; with `fresh`, empties it first.
    init(path: String, fresh: Bool) throws(ResilienceError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (fresh ? O_TRUNC : 0), 0o600)
        guard fd >= 0 else {
            throw ResilienceError(code: .spillFailed, message: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        self.path = path
        self.descriptor = Mutex(fd)
    }

    deinit { _ = descriptor.withLock { close($0) } }

    /// Records that the routes are now numbered `routes` (index 0: the default route, `nil`).
    func appendRoutes(_ routes: [String?]) {
        append((["r"] + routes.dropFirst().map { Self.escape($0 ?? "") }).joined(separator: "\t"))
    }

    /// Records that scope `index` is (`name`, `version`).
    func appendScope(index: Int, name: String, version: String?) {
        append((["s", "\(index)", Self.escape(name)] + (version.map { [Self.escape($0)] } ?? [])).joined(separator: "\t"))
    }

    private func append(_ line: String) {
        var bytes = Array((line + "\n").utf8)
        descriptor.withLock { fd in
            // O_APPEND: one write is one line, whole or (on a crash) torn at the end, where reading ignores it.
            _ = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress, $0.count) }
        }
    }

    /// Reads the journal at `path`; empty contents when it is missing.
    static func read(path: String) -> Contents {
        var contents = Contents()
        guard let file = fopen(path, "r") else { return contents }
        defer { fclose(file) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        // Only whole lines: a crash may have torn the last one.
        let whole = data.lastIndex(of: UInt8(ascii: "\n")).map { data[...$0] } ?? []
        for line in whole.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: "\t"), omittingEmptySubsequences: false).map {
                unescape(String(decoding: $0, as: UTF8.self))
            }
            switch fields.first {
            case "r":
                contents.routes = [nil] + fields.dropFirst().map { $0 }
            case "s" where fields.count >= 3:
                // Lines come in index order; one out of order means the file is not ours: stop trusting it.
                guard Int(fields[1]) == contents.scopes.count else { return contents }
                contents.scopes.append((fields[2], fields.count > 3 ? fields[3] : nil))
            default:
                continue
            }
        }
        return contents
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "\\": out += "\\\\"
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    static func unescape(_ text: String) -> String {
        var out = ""
        var escaped = false
        for c in text {
            if escaped {
                out.append(c == "t" ? "\t" : c == "n" ? "\n" : c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return out
    }
}
