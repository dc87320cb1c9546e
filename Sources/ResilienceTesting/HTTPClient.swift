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

    /// Sends one request to an IPv4 `host` and reads the whole answer, within `timeout` seconds a read.
    public static func request(
        host: String = "127.0.0.1", port: Int, method: String = "GET", path: String, headers: [String: String] = [:], body: String = "",
        timeout: Int = 10
    ) throws(Failure) -> Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var time = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw Failure(description: "\(host): not an IPv4 address") }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "\(host):\(port): \(String(cString: strerror(errno)))") }
        var text = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
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
            throw Failure(description: "\(host):\(port) gave no HTTP answer (\(received.count) bytes)")
        }
        let head = String(response[..<split.lowerBound])
        guard head.hasPrefix("HTTP/1."), let status = Int(head.split(separator: " ").dropFirst().first ?? "") else {
            throw Failure(description: "\(host):\(port) did not answer HTTP: \(head.prefix(80))")
        }
        return Response(status: status, head: head, body: String(response[split.upperBound...]))
    }
}
