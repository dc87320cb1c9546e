import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Exports OTLP requests over HTTP/1.1 (`http/protobuf`) to `/v1/traces`, `/v1/logs` and `/v1/metrics`, in
/// plaintext (`http://`) or over TLS (`https://`, with the package trait `TLS`).
///
/// Keeps idle connections open and reuses them (keep-alive), one request per connection at a
/// time, so concurrent exports use parallel connections. Bodies are sent as built by the batch
/// processor, gzip-compressed if configured. Answers are parsed: 2xx with an OTLP response body
/// (a `partial_success` is returned as ``ExportResponse/rejectedRecords``); anything else throws
/// ``OTLPExportError`` with the status, `Retry-After` and the collector's message.
///
/// TLS uses ``OTLPExporterConfiguration/tls`` (or the signal's own), read when the exporter is
/// built. A handshake that fails for a reason that would repeat — the collector's certificate
/// untrusted, expired or for another host, a client certificate refused or missing, a peer that
/// does not speak TLS — throws ``OTLPExportError/Code/tlsFailed`` with a message naming the
/// problem (a ``ExportFailureKind/misconfigured`` failure). The handshake's time is part of the
/// connection's set-up, not of the collector's answer time.
///
/// Thread-safety: safe to call concurrently. Does not retry: one layer of the chain owns retries.
public final class OTLPHTTPExporter: TelemetryExporter {
    public let name = "otlp_http"
    let configuration: OTLPExporterConfiguration
    private let endpoints: SignalTable<HTTPEndpoint>
    /// Each signal's headers, compression and timeout (``OTLPExporterConfiguration/resolved(_:)``).
    private let settings: SignalTable<OTLPSignalSettings>
    #if TLS
        /// Each signal's TLS context, for an `https://` endpoint.
        private let tlsClients: SignalTable<TLSClient?>
    #endif
    private let group: any EventLoopGroup
    private let idle = Mutex<[HTTPEndpoint: [Connection]]>([:])
    /// Whether a plaintext endpoint answered a TLS handshake (``speaksTLS(_:)``): `true` is kept,
    /// `false` for 5 s, so that a collector resetting connections is not probed at every request.
    private let tlsProbes = Mutex<[HTTPEndpoint: (speaksTLS: Bool, at: UInt64)]>([:])
    private let isShutDown = Atomic<Bool>(false)

    /// Makes an exporter. Connections are opened on first use.
    /// - Throws: ``ConfigurationError`` if an endpoint is not an `http://` (or `https://`) URL, a
    ///   value is out of range, or a TLS file cannot be read.
    public convenience init(configuration: OTLPExporterConfiguration) throws(ConfigurationError) {
        try self.init(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton)
    }

    init(configuration: OTLPExporterConfiguration, group: any EventLoopGroup) throws(ConfigurationError) {
        try configuration.validate()
        self.configuration = configuration
        var endpoints: [HTTPEndpoint] = []
        do {
            for signal in TelemetrySignal.allCases {
                endpoints.append(
                    try HTTPEndpoint(parsing: configuration.resolvedEndpoint(signal), settings: configuration.resolved(signal)))
            }
        } catch {
            throw ConfigurationError(key: "exporter.endpoint", value: configuration.endpoint, allowed: error.allowed)
        }
        self.endpoints = SignalTable(traces: endpoints[0], logs: endpoints[1], metrics: endpoints[2])
        self.settings = SignalTable { configuration.resolved($0) }
        self.group = group
        #if TLS
            var clients: [TLSClient?] = []
            for (index, signal) in TelemetrySignal.allCases.enumerated() {
                clients.append(
                    endpoints[index].usesTLS
                        ? try TLSClient(common: configuration.tls, own: configuration.settings(signal).tls, signal: signal) : nil
                )
            }
            self.tlsClients = SignalTable(traces: clients[0], logs: clients[1], metrics: clients[2])
        #endif
    }

    public func export(_ batch: ExportBatch) async throws -> ExportResponse {
        let endpoint = endpoints[batch.signal]
        let settings = self.settings[batch.signal]
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
            let (connection, reused) = try await connection(to: endpoint, signal: batch.signal, timeout: settings.timeout)
            let channel = connection.channel
            // Cancelled while it waited for a connection (shutdown past its deadline), or shut down:
            // nothing is written. The pipeline that gave the send up keeps the batch to send later,
            // and a request written now could still reach the collector: delivered twice.
            guard !Task.isCancelled && !isShutDown.load(ordering: .relaxed) else {
                channel.close(promise: nil)
                throw ResilienceError(code: .shutDown, message: "export cancelled before its request was written")
            }
            let promise = channel.eventLoop.makePromise(of: HTTPExchange.Response.self)
            // A connection that closed before the request reached its handler (a TLS 1.3 server
            // refusing the client's certificate right after the handshake) fails the exchange
            // with the reason its handler saw, not never.
            let written = channel.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenFailure { error in
                var failure =
                    connection.failure.withLockedValue { $0 }
                    ?? OTLPExportError(code: .connectionClosed, message: "connection closed before the request was sent: \(error)")
                failure.beforeAnswer = true
                promise.fail(failure)
            }
            channel.writeAndFlush(HTTPExchange(head: head, body: body, timeout: timeout, promise: promise), promise: written)
            do {
                // Shutdown cancels exports past its deadline: the connection closes, so a
                // collector that does not answer cannot hold the batch for the whole timeout.
                let answer = try await withTaskCancellationHandler {
                    try await promise.futureResult.get()
                } onCancel: {
                    channel.close(promise: nil)
                }
                if answer.keepAlive && channel.isActive && !isShutDown.load(ordering: .relaxed) {
                    idle.withLock { $0[endpoint, default: []].append(connection) }
                } else {
                    channel.close(promise: nil)
                }
                response = answer
                break
            } catch  where Task.isCancelled {
                throw CancellationError()
            } catch let error as OTLPExportError where error.code == .connectionClosed && reused && error.beforeAnswer && attempt == 0 {
                continue
            } catch let error as OTLPExportError where error.code == .connectionClosed && !reused && error.beforeAnswer {
                // Closed or reset without a byte of answer on a new connection: a TLS collector on
                // an http:// endpoint does this (so does one that crashed: the probe tells which).
                if !endpoint.usesTLS, await speaksTLS(endpoint, timeout: timeout) {
                    throw OTLPExportError(
                        code: .tlsFailed,
                        message: "\(endpoint.host):\(endpoint.port) speaks TLS and closed the plaintext request: use an https:// endpoint")
                }
                throw error
            }
        }
        guard let response else { throw OTLPExportError(code: .connectionClosed, message: "connection closed twice before an answer") }
        return try interpret(response, signal: batch.signal)
    }

    public func shutdown() async {
        isShutDown.store(true, ordering: .relaxed)
        let connections = idle.withLock { pools in
            defer { pools.removeAll() }
            return pools.values.flatMap { $0 }
        }
        for connection in connections { try? await connection.channel.close() }
    }

    /// Whether `endpoint` completes a TLS handshake (asked at most every 5 s while it does not).
    private func speaksTLS(_ endpoint: HTTPEndpoint, timeout: TimeAmount) async -> Bool {
        #if TLS
            let now = monotonicNanos()
            if let known = tlsProbes.withLock({ $0[endpoint] }), known.speaksTLS || now &- known.at < 5_000_000_000 {
                return known.speaksTLS
            }
            let answer =
                await TLSClient.presentedCertificate(host: endpoint.host, port: endpoint.port, group: group, timeout: timeout) != nil
            tlsProbes.withLock { $0[endpoint] = (answer, now) }
            return answer
        #else
            return false
        #endif
    }

    private func connection(to endpoint: HTTPEndpoint, signal: TelemetrySignal, timeout: Duration) async throws -> (
        connection: Connection, reused: Bool
    ) {
        while let connection = idle.withLock({ $0[endpoint]?.popLast() }) {
            if connection.channel.isActive { return (connection, true) }
        }
        let failure = Connection.Failure(nil)
        #if TLS
            let tls = tlsClients[signal]
        #endif
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(timeout.nanoseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    #if TLS
                        if let tls { try tls.addHandlers(to: channel, host: endpoint.host) }
                    #endif
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        HTTPExchangeHandler(endpoint: "\(endpoint.host):\(endpoint.port)", failure: failure))
                }
            }
        // The set-up is not the collector's answer time: the export window leaves it out.
        let start = monotonicNanos()
        defer { TransportTiming.current?.setupNanoseconds.add(Int64(clamping: monotonicNanos() &- start), ordering: .relaxed) }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            throw OTLPExportError(code: .connectionFailed, message: "\(endpoint.host):\(endpoint.port): \(error)")
        }
        #if TLS
            if let tls { try await tls.awaitHandshake(on: channel, endpoint: endpoint, group: group, timeout: timeout) }
        #endif
        return (Connection(channel: channel, failure: failure), false)
    }

    private func interpret(_ response: HTTPExchange.Response, signal: TelemetrySignal) throws -> ExportResponse {
        let status = Int(response.status.code)
        // What Go's TLS servers (the OpenTelemetry Collector among them) answer a plaintext request.
        if status == 400, String(decoding: response.body.prefix(200), as: UTF8.self).contains("HTTP request to an HTTPS server") {
            throw OTLPExportError(
                code: .tlsFailed, statusCode: status, message: "the collector speaks TLS on this port: use an https:// endpoint")
        }
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
        return try ExportResponse.parse(body, signal: signal, status: status, redacting: configuration)
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

    /// `host:port`, for messages.
    private let endpoint: String
    /// Where an error that came while no exchange was under way is kept, for the next request.
    private let failure: Connection.Failure
    private var promise: EventLoopPromise<HTTPExchange.Response>?
    private var timeoutTask: Scheduled<Void>?
    private var response: HTTPExchange.Response?

    init(endpoint: String, failure: Connection.Failure) {
        self.endpoint = endpoint
        self.failure = failure
    }

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
        // A TLS alert after the handshake (TLS 1.3 servers refuse a client certificate so).
        if var failure = tlsFailure(error, endpoint: endpoint) {
            failure.beforeAnswer = response == nil
            fail(failure, context: context)
            return
        }
        // A response cut short (EOF inside it) is a transport failure, retried; a malformed one is not.
        var code: OTLPExportError.Code = error is HTTPParserError ? .invalidResponse : .connectionClosed
        var message = "\(error)"
        if case HTTPParserError.invalidEOFState = error {
            code = .connectionClosed
        } else if code == .invalidResponse && response == nil {
            message +=
                " (the answer from \(endpoint) is not HTTP; a collector that speaks TLS answers a plaintext request so: "
                + "use https:// if it does)"
        }
        var failure = OTLPExportError(code: code, message: message)
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
        } else {
            failure.withLockedValue { $0 = $0 ?? error }
        }
        context.close(promise: nil)
    }
}

/// A connection of the exporter and the error its handler saw while no exchange was under way.
struct Connection: Sendable {
    typealias Failure = NIOLockedValueBox<OTLPExportError?>
    var channel: any Channel
    var failure: Failure
}
