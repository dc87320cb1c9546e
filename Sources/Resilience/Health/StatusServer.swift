import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The status endpoint's HTTP/1.1 server (``PipelineConfiguration/StatusEndpoint``): one event
/// loop of its own, requests answered by ``StatusRoutes``.
///
/// Thread-safety: safe from any thread. ``stop()`` closes the listener and the loop.
final class StatusServer: Sendable {
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup
    private let stopped = Atomic<Bool>(false)
    /// The port it listens on (the one the system chose for port 0).
    let port: Int

    /// Binds `endpoint` and starts answering with `routes`.
    /// - Throws: ``ConfigurationError`` for `SPILLWAY_STATUS_ADDRESS` when the address cannot be bound.
    init(_ endpoint: PipelineConfiguration.StatusEndpoint, routes: StatusRoutes) throws(ConfigurationError) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(StatusRequestHandler(routes: routes))
                }
            }
        do {
            channel = try bootstrap.bind(host: endpoint.host, port: endpoint.port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw ConfigurationError(
                key: "SPILLWAY_STATUS_ADDRESS", value: "\(endpoint.host):\(endpoint.port)",
                allowed: "an address this process can listen on (\(error))")
        }
        self.group = group
        self.port = channel.localAddress?.port ?? endpoint.port
    }

    /// Stops listening and shuts the loop down, and returns once the port is released: requests
    /// under way are cut off. (Without waiting, the listener closed on its loop just after the
    /// pipeline's shutdown had returned, and the port could not be bound again at once.)
    func shutDown() async {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    /// Stops listening and shuts the loop down without waiting (a pipeline released without shutdown).
    func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        // The loop after the listener: closing schedules work on it.
        let group = self.group
        channel.close().whenComplete { _ in group.shutdownGracefully { _ in } }
    }
}

/// Reads one request (head and a body of at most 64 KiB), asks ``StatusRoutes``, writes the answer.
final class StatusRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maximumBody = 64 << 10
    private let routes: StatusRoutes
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(routes: StatusRoutes) { self.routes = routes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.removeAll(keepingCapacity: true)
            tooLarge = false
        case .body(var buffer):
            guard !tooLarge else { return }
            if body.count + buffer.readableBytes > Self.maximumBody {
                tooLarge = true
                body.removeAll()
            } else {
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let request = StatusRoutes.Request(
                method: head.method.rawValue, path: head.uri, authorization: head.headers.first(name: "Authorization"), body: body,
                bodyTooLarge: tooLarge)
            let keepAlive = head.isKeepAlive
            // Everything but PUT /config is answered here, on the loop, from atomic loads: a scrape
            // must not wait for Swift's cooperative pool, which a busy service may keep full.
            if let answer = routes.answerNow(request) {
                send(answer, context: context, keepAlive: keepAlive)
                return
            }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let routes = self.routes
            let promise = context.eventLoop.makePromise(of: StatusRoutes.Answer.self)
            Task(executorPreference: routes.executor) { promise.succeed(await routes.put(request)) }
            promise.futureResult.whenSuccess { answer in
                let (handler, context) = bound.value
                handler.send(answer, context: context, keepAlive: keepAlive)
            }
        }
    }

    private func send(_ answer: StatusRoutes.Answer, context: ChannelHandlerContext, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: answer.contentType)
        headers.add(name: "Content-Length", value: String(answer.body.utf8.count))
        for (name, value) in answer.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: answer.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: answer.body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if !keepAlive { context.close(promise: nil) }
    }
}

/// What each route of the status endpoint answers; no networking, so that the rules read (and
/// test) on their own.
struct StatusRoutes: Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        var authorization: String?
        var body: [UInt8]
        var bodyTooLarge = false
    }

    struct Answer: Sendable {
        var status: Int
        var contentType = "application/json"
        var body: String
        var headers: [(String, String)] = []

        static func error(_ status: Int, _ message: String, headers: [(String, String)] = []) -> Answer {
            Answer(status: status, body: "{\"error\":\(StatusDocuments.quoted(message))}\n", headers: headers)
        }
    }

    var stats: @Sendable () -> PipelineStats
    var health: @Sendable () -> PipelineHealth
    var configuration: @Sendable () -> PipelineConfiguration
    var applicationMetrics: (@Sendable () -> [[MetricRegistry.Collected]])?
    var reconfigure: @Sendable (PipelineConfiguration) async throws(ConfigurationError) -> Void
    var token: String?
    /// Where `PUT /config` runs its reconfiguration: the pipeline's export executor, never the
    /// cooperative pool.
    var executor: any TaskExecutor

    /// The answer of every request but a well-formed `PUT /config`, at once; `nil` for that one.
    func answerNow(_ request: Request) -> Answer? {
        let path = String(request.path.split(separator: "?", maxSplits: 1).first ?? "")
        let allowed = path == "/config" ? "GET, PUT" : "GET"
        guard ["/health", "/stats", "/metrics", "/config"].contains(path) else {
            return .error(404, "no route \(path): GET /health, /stats, /metrics, /config; PUT /config")
        }
        if request.bodyTooLarge { return .error(413, "the body is larger than 64 KiB") }
        guard request.method == "GET" || (request.method == "PUT" && path == "/config") else {
            return .error(405, "\(request.method) \(path) is not allowed: \(allowed)", headers: [("Allow", allowed)])
        }
        switch (request.method, path) {
        case ("GET", "/health"):
            let health = self.health()
            if case .unhealthy = health { return Answer(status: 503, body: StatusDocuments.health(health)) }
            return Answer(status: 200, body: StatusDocuments.health(health))
        case ("GET", "/stats"):
            return Answer(status: 200, body: StatusDocuments.stats(stats()))
        case ("GET", "/metrics"):
            let text = PrometheusExposition.render(stats: stats(), health: health(), application: applicationMetrics?())
            return Answer(status: 200, contentType: PrometheusExposition.contentType, body: text)
        case ("GET", "/config"):
            return Answer(status: 200, body: StatusDocuments.configuration(configuration()))
        default:
            return nil
        }
    }

    /// `PUT /config`: a JSON object of live keys (string values), with the bearer token.
    func put(_ request: Request) async -> Answer {
        guard let token else {
            return .error(403, "PUT /config is off: start the pipeline with a configuration token (SPILLWAY_STATUS_CONFIG_TOKEN)")
        }
        guard let authorization = request.authorization, authorization.hasPrefix("Bearer "),
            constantTimeEquals(Array(authorization.utf8.dropFirst(7)), Array(token.utf8))
        else {
            return .error(
                401, "PUT /config needs the header Authorization: Bearer <the configuration token>",
                headers: [("WWW-Authenticate", "Bearer")])
        }
        let values: [String: String]
        do {
            values = try FlatJSONObject.parse(request.body)
        } catch {
            return .error(400, "the body is not a JSON object of strings: \(error.description)")
        }
        do {
            let new = try configuration().applyingLiveKeys(values, source: "PUT /config")
            try await reconfigure(new)
        } catch {
            return .error(400, error.description)
        }
        return Answer(status: 200, body: StatusDocuments.configuration(configuration()))
    }

    private func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
