import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Exports OTLP requests over HTTP/1.1 (`http/protobuf`) to `/v1/traces` and `/v1/logs`.
///
/// Keeps idle connections open and reuses them (keep-alive), one request per connection at a
/// time, so concurrent exports use parallel connections. Bodies are sent as built by the batch
/// processor, gzip-compressed if configured. Answers are parsed: 2xx with an OTLP response body
/// (a `partial_success` is returned as ``ExportResponse/rejectedRecords``); anything else throws
/// ``OTLPExportError`` with the status, `Retry-After` and the collector's message.
///
/// Thread-safety: safe to call concurrently. Does not retry: one layer of the chain owns retries.
public final class OTLPHTTPExporter: TelemetryExporter {
    public let name = "otlp_http"
    let configuration: OTLPExporterConfiguration
    private let tracesEndpoint: HTTPEndpoint
    private let logsEndpoint: HTTPEndpoint
    /// Each signal's headers, compression and timeout (``OTLPExporterConfiguration/resolved(_:)``).
    private let tracesSettings: (headers: [String: String], compression: OTLPExporterConfiguration.Compression, timeout: Duration)
    private let logsSettings: (headers: [String: String], compression: OTLPExporterConfiguration.Compression, timeout: Duration)
    private let group: any EventLoopGroup
    private let idle = Mutex<[HTTPEndpoint: [any Channel]]>([:])
    private let isShutDown = Atomic<Bool>(false)

    /// Makes an exporter. Connections are opened on first use.
    /// - Throws: ``ConfigurationError`` if an endpoint is not an `http://` URL or a value is out of range.
    public convenience init(configuration: OTLPExporterConfiguration) throws(ConfigurationError) {
        try self.init(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton)
    }

    init(configuration: OTLPExporterConfiguration, group: any EventLoopGroup) throws(ConfigurationError) {
        try configuration.validate()
        self.configuration = configuration
        do {
            self.tracesEndpoint = try HTTPEndpoint(parsing: configuration.resolvedTracesEndpoint)
            self.logsEndpoint = try HTTPEndpoint(parsing: configuration.resolvedLogsEndpoint)
        } catch {
            throw ConfigurationError(key: "exporter.endpoint", value: configuration.endpoint, allowed: error.allowed)
        }
        self.tracesSettings = configuration.resolved(.traces)
        self.logsSettings = configuration.resolved(.logs)
        self.group = group
    }

    public func export(_ batch: ExportBatch) async throws -> ExportResponse {
        let endpoint = batch.signal == .traces ? tracesEndpoint : logsEndpoint
        let settings = batch.signal == .traces ? tracesSettings : logsSettings
        let body: ByteBuffer
        var headers = HTTPHeaders()
        headers.reserveCapacity(6 + settings.headers.count)
        headers.add(name: "Host", value: endpoint.hostHeader)
        headers.add(name: "User-Agent", value: "spillway/\(spillwayVersion)")
        headers.add(name: "Content-Type", value: "application/x-protobuf")
        if settings.compression == .gzip {
            body = gzipCompress(batch.body)
            headers.add(name: "Content-Encoding", value: "gzip")
        } else {
            body = ByteBuffer(bytes: batch.body)
        }
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        for (name, value) in settings.headers { headers.add(name: name, value: value) }
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: endpoint.path, headers: headers)

        let timeout = TimeAmount.nanoseconds(settings.timeout.nanoseconds)
        var response: HTTPExchange.Response?
        // A kept-alive connection may have been closed by the collector while idle; that is not
        // the collector failing, so the request goes once more on a new connection.
        for attempt in 0..<2 {
            let (channel, reused) = try await connection(to: endpoint, timeout: settings.timeout)
            let promise = channel.eventLoop.makePromise(of: HTTPExchange.Response.self)
            channel.writeAndFlush(HTTPExchange(head: head, body: body, timeout: timeout, promise: promise), promise: nil)
            do {
                let answer = try await promise.futureResult.get()
                if answer.keepAlive && channel.isActive && !isShutDown.load(ordering: .relaxed) {
                    idle.withLock { $0[endpoint, default: []].append(channel) }
                } else {
                    channel.close(promise: nil)
                }
                response = answer
                break
            } catch let error as OTLPExportError where error.code == .connectionClosed && reused && error.beforeAnswer && attempt == 0 {
                continue
            }
        }
        guard let response else { throw OTLPExportError(code: .connectionClosed, message: "connection closed twice before an answer") }
        return try interpret(response, signal: batch.signal)
    }

    public func shutdown() async {
        isShutDown.store(true, ordering: .relaxed)
        let channels = idle.withLock { pools in
            defer { pools.removeAll() }
            return pools.values.flatMap { $0 }
        }
        for channel in channels { try? await channel.close() }
    }

    private func connection(to endpoint: HTTPEndpoint, timeout: Duration) async throws -> (channel: any Channel, reused: Bool) {
        while let channel = idle.withLock({ $0[endpoint]?.popLast() }) {
            if channel.isActive { return (channel, true) }
        }
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(timeout.nanoseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(HTTPExchangeHandler())
                }
            }
        do {
            // The set-up is not the collector's answer time: the export window leaves it out.
            let start = monotonicNanos()
            defer { TransportTiming.current?.setupNanoseconds.add(Int64(clamping: monotonicNanos() &- start), ordering: .relaxed) }
            return (try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get(), false)
        } catch {
            throw OTLPExportError(code: .connectionFailed, message: "\(endpoint.host):\(endpoint.port): \(error)")
        }
    }

    private func interpret(_ response: HTTPExchange.Response, signal: TelemetrySignal) throws -> ExportResponse {
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            throw OTLPExportError(
                code: .httpStatus, statusCode: status, retryAfter: response.headers.first(name: "Retry-After"),
                message: configuration.redactingHeaderValues(Self.statusMessage(response.body)))
        }
        // Export{Trace,Logs}ServiceResponse { partial_success = 1 { int64 rejected = 1; string error_message = 2; } }
        var body = response.body
        if response.headers.first(name: "Content-Encoding")?.lowercased() == "gzip" {
            guard let inflated = gzipDecompress(body, maximumSize: 1 << 20) else {
                throw OTLPExportError(code: .invalidResponse, statusCode: status, message: "response body is not valid gzip")
            }
            body = inflated
        }
        if let type = response.headers.first(name: "Content-Type"), !body.isEmpty, !type.hasPrefix("application/x-protobuf") {
            throw OTLPExportError(
                code: .invalidResponse, statusCode: status, message: "response Content-Type \(type), expected application/x-protobuf")
        }
        do {
            return try body.withUnsafeBytes { bytes throws(ProtoDecodingError) -> ExportResponse in
                var reader = ProtoReader(bytes)
                var result = ExportResponse()
                while let field = try reader.nextField() {
                    guard field.number == 1, field.wire == 2 else {
                        try reader.skip(field.wire)
                        continue
                    }
                    var partial = try reader.message()
                    while let inner = try partial.nextField() {
                        switch (inner.number, inner.wire) {
                        case (1, 0): result.rejectedRecords = Int(truncatingIfNeeded: try partial.varint())
                        case (2, 2): result.errorMessage = configuration.redactingHeaderValues(try partial.string())
                        default: try partial.skip(inner.wire)
                        }
                    }
                }
                return result
            }
        } catch {
            throw OTLPExportError(
                code: .invalidResponse, statusCode: status, message: "response body is not an OTLP \(signal) response: \(error)")
        }
    }

    /// The message of a `google.rpc.Status` body, or the body as text if it is short and printable.
    static func statusMessage(_ body: [UInt8]) -> String {
        if let message = try? body.withUnsafeBytes({ bytes throws(ProtoDecodingError) -> String? in
            var reader = ProtoReader(bytes)
            var message: String?
            while let field = try reader.nextField() {
                if field.number == 2 && field.wire == 2 { message = try reader.string() } else { try reader.skip(field.wire) }
            }
            return message
        }) {
            return message
        }
        let text = String(decoding: body.prefix(200), as: UTF8.self)
        return text.unicodeScalars.allSatisfy({ $0.value >= 32 || $0 == "\n" }) ? text : "<\(body.count) bytes>"
    }
}

/// One request and the promise of its answer, written to a connection's pipeline.
struct HTTPExchange {
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: [UInt8]
        var keepAlive: Bool
    }

    var head: HTTPRequestHead
    var body: ByteBuffer
    var timeout: TimeAmount
    var promise: EventLoopPromise<Response>
}

/// Runs one exchange at a time on its connection: writes the request, collects the answer,
/// completes the promise exactly once (answer, timeout, error or close, whichever comes first).
final class HTTPExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPExchange
    typealias OutboundOut = HTTPClientRequestPart

    private static let maximumResponseBody = 4 << 20

    private var promise: EventLoopPromise<HTTPExchange.Response>?
    private var timeoutTask: Scheduled<Void>?
    private var response: HTTPExchange.Response?

    func write(context: ChannelHandlerContext, data: NIOAny, promise writePromise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        guard promise == nil else {
            exchange.promise.fail(OTLPExportError(code: .connectionClosed, message: "connection busy"))
            return
        }
        promise = exchange.promise
        response = nil
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timeoutTask = context.eventLoop.scheduleTask(in: exchange.timeout) {
            loopBound.value.fail(
                OTLPExportError(code: .timeout, message: "no answer within \(exchange.timeout)"), context: contextBound.value)
        }
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(exchange.body))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: writePromise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            response = .init(status: head.status, headers: head.headers, body: [], keepAlive: head.isKeepAlive)
        case .body(var buffer):
            guard response != nil else { return }
            if response!.body.count + buffer.readableBytes > Self.maximumResponseBody {
                fail(
                    OTLPExportError(code: .invalidResponse, message: "response body over \(Self.maximumResponseBody) bytes"),
                    context: context)
                return
            }
            response!.body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let response, let promise else { return }
            self.promise = nil
            self.response = nil
            timeoutTask?.cancel()
            promise.succeed(response)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A response cut short (EOF inside it) is a transport failure, retried; a malformed one is not.
        var code: OTLPExportError.Code = error is HTTPParserError ? .invalidResponse : .connectionClosed
        if case HTTPParserError.invalidEOFState = error { code = .connectionClosed }
        var failure = OTLPExportError(code: code, message: "\(error)")
        failure.beforeAnswer = response == nil
        fail(failure, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        var failure = OTLPExportError(code: .connectionClosed, message: "connection closed before the answer was complete")
        failure.beforeAnswer = response == nil
        fail(failure, context: context)
        context.fireChannelInactive()
    }

    private func fail(_ error: OTLPExportError, context: ChannelHandlerContext) {
        timeoutTask?.cancel()
        if let promise {
            self.promise = nil
            promise.fail(error)
        }
        context.close(promise: nil)
    }
}
