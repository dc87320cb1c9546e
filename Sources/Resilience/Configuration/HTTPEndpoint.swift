/// A parsed `http://host:port/path` or `https://host:port/path` URL.
struct HTTPEndpoint: Sendable, Hashable {
    var host: String
    var port: Int
    var path: String
    /// `https://`: the connection speaks TLS.
    var usesTLS: Bool

    struct ParseError: Error { var allowed: String }

    #if TLS
        static let allowedURLs = "an http:// or https:// URL with a host, e.g. http://localhost:4318"
    #else
        static let allowedURLs =
            "an http:// URL with a host, e.g. http://localhost:4318 (https:// needs the package trait TLS, which this build leaves out)"
    #endif

    /// Parses `url` for a signal with `settings`: over gRPC, `host:port` without a scheme is
    /// allowed too, and speaks TLS unless ``OTLPSignalSettings/insecure``.
    init(parsing url: String, settings: OTLPSignalSettings) throws(ParseError) {
        let lowered = url.prefix(8).lowercased()
        if settings.protocol == .grpc && !lowered.hasPrefix("http://") && !lowered.hasPrefix("https://") && !url.contains("://") {
            try self.init(parsing: (settings.insecure ? "http://" : "https://") + url)
        } else {
            try self.init(parsing: url)
        }
    }

    init(parsing url: String) throws(ParseError) {
        let allowed = Self.allowedURLs
        let lowered = url.prefix(8).lowercased()
        #if TLS
            usesTLS = lowered.hasPrefix("https://")
        #else
            usesTLS = false
        #endif
        guard lowered.hasPrefix("http://") || usesTLS else { throw ParseError(allowed: allowed) }
        let rest = url.dropFirst(usesTLS ? "https://".count : "http://".count)
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = String(rest[authorityEnd...])
        if path.isEmpty { path = "/" }
        if path.hasPrefix("?") { path = "/" + path }
        var host: Substring
        var port = usesTLS ? 443 : 80
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

    var hostHeader: String {
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return port == (usesTLS ? 443 : 80) ? bracketed : "\(bracketed):\(port)"
    }
}
