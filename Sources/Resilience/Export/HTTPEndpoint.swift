/// A parsed `http://host:port/path` URL.
struct HTTPEndpoint: Sendable, Hashable {
    var host: String
    var port: Int
    var path: String

    struct ParseError: Error { var allowed: String }

    init(parsing url: String) throws(ParseError) {
        let allowed = "an http:// URL with a host, e.g. http://localhost:4318 (https needs TLS, which this build does not include)"
        guard url.hasPrefix("http://") else { throw ParseError(allowed: allowed) }
        let rest = url.dropFirst("http://".count)
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = String(rest[authorityEnd...])
        if path.isEmpty { path = "/" }
        if path.hasPrefix("?") { path = "/" + path }
        var host: Substring
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw ParseError(allowed: allowed) }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw ParseError(allowed: allowed) }
                port = p
            } else if !after.isEmpty {
                throw ParseError(allowed: allowed)
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else {
                throw ParseError(allowed: allowed)
            }
            port = p
        } else {
            host = authority
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "@" }) else { throw ParseError(allowed: allowed) }
        self.host = String(host)
        self.port = port
        self.path = path
    }

    var hostHeader: String { port == 80 ? host : "\(host.contains(":") ? "[\(host)]" : host):\(port)" }
}
