import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal blocking HTTP/1.1 client over a socket (`Connection: close`), for tests and the
/// `spillway status` view of a status endpoint: no curl, no URLSession.
///
/// Thread-safety: a value with no state; each call opens its own connection.
public enum HTTPClient {
    /// An answer: the status, the head's text (status line and headers), the body as text.
    public struct Response: Sendable, CustomStringConvertible {
        public var status: Int
        public var head: String
        public var body: String
        public var description: String { "\(status) \(body)" }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Sends one request to `host` (an IPv4 or IPv6 address, or a name resolved with
    /// `getaddrinfo`, each address tried in turn) and reads the whole answer, within `timeout`
    /// seconds a read.
    public static func request(
        host: String = "127.0.0.1", port: Int, method: String = "GET", path: String, headers: [String: String] = [:], body: String = "",
        timeout: Int = 10
    ) throws(Failure) -> Response {
        let fd = try connect(host: host, port: port, timeout: timeout)
        defer { close(fd) }
        let hostHeader = authority(host: host, port: port)
        var text = "\(method) \(path) HTTP/1.1\r\nHost: \(hostHeader)\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n" + body
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the server may answer (413) and close before the whole body is sent
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        let response = String(decoding: received, as: UTF8.self)
        guard let split = response.range(of: "\r\n\r\n") else {
            throw Failure(description: "\(hostHeader) gave no HTTP answer (\(received.count) bytes)")
        }
        let head = String(response[..<split.lowerBound])
        guard head.hasPrefix("HTTP/1."), let status = Int(head.split(separator: " ").dropFirst().first ?? "") else {
            throw Failure(description: "\(hostHeader) did not answer HTTP: \(head.prefix(80))")
        }
        return Response(status: status, head: head, body: String(response[split.upperBound...]))
    }

    /// `host:port`, an IPv6 address in brackets (`[::1]:9464`): the `Host` header's form.
    public static func authority(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// A connected stream socket to `host`:`port`, the first of its addresses that accepts.
    private static func connect(host: String, port: Int, timeout: Int) throws(Failure) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let first = list else {
            throw Failure(description: "\(host): \(String(cString: gai_strerror(resolved)))")
        }
        defer { freeaddrinfo(first) }
        var lastError = ECONNREFUSED
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if fd < 0 {
                lastError = errno
                continue
            }
            var time = timeval(tv_sec: timeout, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
            lastError = errno
            close(fd)
        }
        throw Failure(description: "\(authority(host: host, port: port)): \(String(cString: strerror(lastError)))")
    }
}
