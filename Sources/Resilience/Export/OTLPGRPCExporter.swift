#if GRPC
    import NIOConcurrencyHelpers
    import NIOCore
    import NIOHPACK
    import NIOHTTP2
    import NIOPosix
    import Synchronization

    /// Exports OTLP requests as unary gRPC `Export` calls (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`) over
    /// HTTP/2: plaintext with prior knowledge (`http://`), or TLS with ALPN `h2` (`https://`, or a
    /// `host:port` endpoint unless ``OTLPExporterConfiguration/insecure``).
    ///
    /// A few HTTP/2 connections per endpoint (one per core, at most 4) carry every call at once, each
    /// on its own stream, so the export window costs streams, not connections. The request bytes the batch processor built are
    /// sent as the call's message unchanged (no re-encoding), gzip-compressed if configured
    /// (`grpc-encoding: gzip`); headers go as metadata; the timeout is the call's deadline
    /// (`grpc-timeout`). An answer with a status other than `OK` throws
    /// ``OTLPExportError/Code/grpcStatus`` with the code, the message and the delay of a
    /// `google.rpc.RetryInfo` among the status details (a floor on the next attempt, as
    /// `Retry-After`); ``ExportFailureKind/classify(_:)`` applies the OTLP/gRPC rules.
    ///
    /// Calls over the collector's limit of concurrent streams wait for a free stream. A collector
    /// ending a connection with GOAWAY (a maximum connection age, a restart) answers the calls it
    /// took on it, which finish there; those it says it did not take go again on a new connection.
    ///
    /// Thread-safety: safe to call concurrently. Does not retry: one layer of the chain owns retries.
    public final class OTLPGRPCExporter: TelemetryExporter {
        public let name = "otlp_grpc"
        let configuration: OTLPExporterConfiguration
        private let endpoints: [HTTPEndpoint]  // by signal: traces, logs
        private let settings: [OTLPSignalSettings]
        /// Each signal's request headers (its metadata included).
        private let requestHeaders: [HPACKHeaders]
        #if TLS
            private let tlsClients: [TLSClient?]
        #endif
        private let group: any EventLoopGroup
        /// The group's loops: slot `i` of an endpoint connects on `loops[i % loops.count]`.
        private let loops: [any EventLoop]
        private let connections = Mutex<[ConnectionKey: CachedConnection]>([:])
        /// Calls take the connections of an endpoint in turn: one HTTP/2 connection is served by one
        /// event-loop thread at each end, and a few keep both cores busy (measured: one connection
        /// carried 1.0 M spans/s where HTTP/1.1's parallel connections carried 2.0 M).
        package let connectionsPerEndpoint = max(1, min(4, System.coreCount))
        private let nextSlot = Atomic<Int>(0)

        struct ConnectionKey: Hashable {
            var endpoint: HTTPEndpoint
            var slot: Int
        }

        /// A connection of the cache: open (taken without waiting), or being made (the first
        /// call makes it, the others wait for it).
        enum CachedConnection {
            case ready(GRPCConnection)
            case connecting(EventLoopFuture<GRPCConnection>)

            var future: EventLoopFuture<GRPCConnection> {
                switch self {
                case .ready(let connection): connection.future
                case .connecting(let future): future
                }
            }
        }
        private let isShutDown = Atomic<Bool>(false)

        /// Makes an exporter. Connections are opened on first use.
        /// - Throws: ``ConfigurationError`` if an endpoint or a value is invalid, or a TLS file cannot be read.
        public convenience init(configuration: OTLPExporterConfiguration) throws(ConfigurationError) {
            try self.init(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, lastStreamID: .max)
        }

        /// How often one call is sent when the collector says it did not process it (GOAWAY), each
        /// time on a new connection, before it fails to the chain's retry. Measured: a collector
        /// ending every connection after 7 calls, with 2 streams a connection and 16 calls under
        /// way, sent 3 of 4,000 calls away three times in a row (then the limit was 3).
        static let sendsOfAnUnprocessedCall = 6

        /// The highest stream id of a connection (for tests: HTTP/2's 2³¹ − 1 takes a billion calls).
        private let lastStreamID: Int32

        /// An exporter whose connections use stream ids up to `lastStreamID` (for tests).
        package convenience init(configuration: OTLPExporterConfiguration, lastStreamID: Int32) throws(ConfigurationError) {
            try self.init(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, lastStreamID: lastStreamID)
        }

        init(configuration: OTLPExporterConfiguration, group: any EventLoopGroup, lastStreamID: Int32) throws(ConfigurationError) {
            self.lastStreamID = lastStreamID
            try configuration.validate()
            self.configuration = configuration
            let signals = TelemetrySignal.allCases
            self.settings = signals.map { configuration.resolved($0) }
            var endpoints: [HTTPEndpoint] = []
            for (signal, settings) in zip(signals, settings) {
                do {
                    endpoints.append(try HTTPEndpoint(parsing: configuration.resolvedEndpoint(signal), settings: settings))
                } catch {
                    throw ConfigurationError(key: "exporter.endpoint", value: configuration.endpoint, allowed: error.allowed)
                }
            }
            self.endpoints = endpoints
            // The same for every call of a signal: built once.
            self.requestHeaders = zip(signals, zip(endpoints, settings)).map { signal, target in
                let (endpoint, settings) = target
                var headers: HPACKHeaders = [
                    ":method": "POST", ":scheme": endpoint.usesTLS ? "https" : "http", ":path": GRPCWire.path(signal),
                    ":authority": endpoint.hostHeader, "content-type": "application/grpc", "te": "trailers",
                    "user-agent": "spillway/\(spillwayVersion)", "grpc-timeout": GRPCWire.timeoutHeader(settings.timeout),
                    "grpc-accept-encoding": "gzip"
                ]
                if settings.compression == .gzip { headers.add(name: "grpc-encoding", value: "gzip") }
                for (name, value) in settings.headers { headers.add(name: name.lowercased(), value: value) }
                return headers
            }
            #if TLS
                var clients: [TLSClient?] = []
                for (signal, endpoint) in zip(signals, endpoints) {
                    let own = configuration.settings(signal).tls
                    clients.append(
                        endpoint.usesTLS
                            ? try TLSClient(common: configuration.tls, own: own, signal: signal, applicationProtocols: ["h2"]) : nil)
                }
                self.tlsClients = clients
            #endif
            self.group = group
            self.loops = Array(group.makeIterator())
        }

        public func export(_ batch: ExportBatch) async throws -> ExportResponse {
            let index = batch.signal.index
            let endpoint = endpoints[index]
            let settings = settings[index]
            let compressed = settings.compression == .gzip
            // The gRPC message: a compressed flag, the length (set once known), the payload.
            var message = ByteBufferAllocator().buffer(capacity: 5 + batch.body.count)
            message.writeInteger(UInt8(compressed ? 1 : 0))
            message.writeInteger(UInt32(0))
            if compressed { message.writeImmutableBuffer(gzipCompress(batch.body)) } else { message.writeBytes(batch.body) }
            message.setInteger(UInt32(message.readableBytes - 5), at: message.readerIndex + 1)
            let headers = requestHeaders[index]
            let timeout = TimeAmount.nanoseconds(settings.timeout.nanoseconds)

            // A connection the collector closed (GOAWAY, idle timeout) is not the collector failing:
            // the call goes once more on a new one.
            let slot = (nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue & Int.max) % connectionsPerEndpoint
            let key = ConnectionKey(endpoint: endpoint, slot: slot)
            for attempt in 0..<Self.sendsOfAnUnprocessedCall {
                let (connection, reused) = try await self.connection(to: key, index: index, timeout: settings.timeout)
                // Cancelled while it waited for a connection, or shut down: no call starts (see the
                // HTTP exporter; the batch is kept by the pipeline that gave the send up).
                guard !Task.isCancelled && !isShutDown.load(ordering: .relaxed) else {
                    throw ResilienceError(code: .shutDown, message: "export cancelled before its call started")
                }
                do {
                    let response = try await call(on: connection, headers: headers, message: message, timeout: timeout)
                    return try interpret(response, signal: batch.signal)
                } catch var error as OTLPExportError where error.code == .connectionClosed {
                    // A stream the collector reset leaves the connection to the other calls on it;
                    // a closed connection, or one the collector is closing (GOAWAY), takes no more.
                    if !connection.acceptsCalls { forget(connection, key: key) }
                    // A call the collector cannot have processed (above a GOAWAY's last stream, or
                    // never sent) goes again even on a new connection (a few times: a collector
                    // ending connections often may end the next one before taking it); one that
                    // may have been, only once, on a kept-alive one.
                    if error.beforeAnswer
                        && ((reused && attempt == 0) || (error.unprocessed && attempt + 1 < Self.sendsOfAnUnprocessedCall))
                    {
                        continue
                    }
                    if let cause = connection.failure.withLockedValue({ $0 }) {
                        // The connection failed under the call: an endpoint that does not speak HTTP/2 ends here.
                        error = cause
                    }
                    throw error
                }
            }
            throw OTLPExportError(
                code: .connectionClosed, message: "the connection closed \(Self.sendsOfAnUnprocessedCall) times before an answer")
        }

        /// One call on a new stream of `connection`. It starts in one task on the connection's
        /// event loop, and the answer resumes the caller from there: one hop each way. (Waiting on
        /// NIO futures from outside their loop costs a hop per callback: with those, the exporter's
        /// event-loop threads made twice HTTP/1.1's system calls per request.)
        private func call(
            on connection: GRPCConnection, headers: HPACKHeaders, message: ByteBuffer, timeout: TimeAmount
        ) async throws -> GRPCCallsHandler.Response {
            let loop = connection.channel.eventLoop
            let calls = connection.calls
            let promise = loop.makePromise(of: GRPCCallsHandler.Response.self)
            // Shutdown cancels exports past its deadline: the call's stream is reset, so a
            // collector that does not answer cannot hold the batch for the whole timeout.
            return try await withTaskCancellationHandler {
                try await withUnsafeThrowingContinuation { continuation in
                    loop.execute {
                        promise.futureResult.whenComplete { continuation.resume(with: $0) }
                        calls.value.start(request: headers, message: message, timeout: timeout, promise: promise)
                    }
                }
            } onCancel: {
                loop.execute { calls.value.cancel(promise) }
            }
        }

        public func shutdown() async {
            isShutDown.store(true, ordering: .relaxed)
            let open = connections.withLock { connections in
                defer { connections.removeAll() }
                return Array(connections.values)
            }
            for entry in open { if let connection = try? await entry.future.get() { try? await connection.channel.close() } }
        }

        /// The event loops of the open connections, one entry per connection (for tests).
        package func connectionEventLoops() async -> [ObjectIdentifier] {
            var loops: [ObjectIdentifier] = []
            for entry in connections.withLock({ Array($0.values) }) {
                if let connection = try? await entry.future.get() { loops.append(ObjectIdentifier(connection.channel.eventLoop)) }
            }
            return loops
        }

        private func interpret(_ response: GRPCCallsHandler.Response, signal: TelemetrySignal) throws -> ExportResponse {
            guard let headers = response.headers else { throw OTLPExportError(code: .invalidResponse, message: "no response headers") }
            let status = headers.first(name: ":status").flatMap { Int($0) } ?? 0
            guard status == 200 else {
                // Not a gRPC answer (a proxy's, or an HTTP server's): judged by its HTTP status.
                throw OTLPExportError(code: .httpStatus, statusCode: status, message: "the gRPC call was answered with HTTP \(status)")
            }
            guard let type = headers.first(name: "content-type"), type.hasPrefix("application/grpc") else {
                throw OTLPExportError(
                    code: .invalidResponse, statusCode: status,
                    message: "response content-type \(headers.first(name: "content-type") ?? "none"), expected application/grpc")
            }
            guard let trailers = response.trailers, let code = trailers.first(name: "grpc-status").flatMap({ Int($0) }) else {
                throw OTLPExportError(code: .invalidResponse, message: "the gRPC answer has no grpc-status")
            }
            guard code == 0 else {
                let text = trailers.first(name: "grpc-message").map { percentDecoded($0) ?? $0 } ?? ""
                var error = OTLPExportError(code: .grpcStatus, statusCode: code, message: configuration.redactingHeaderValues(text))
                error.retryDelay = trailers.first(name: "grpc-status-details-bin").flatMap { GRPCWire.retryDelay(statusDetails: $0) }
                throw error
            }
            let body = try GRPCWire.message(response.body, compressed: headers.first(name: "grpc-encoding"))
            return try ExportResponse.parse(body, signal: signal, status: nil, redacting: configuration)
        }

        /// Takes `connection` out of the cache. It is not closed here: the calls still on it go
        /// on (after a GOAWAY its handler closes it once the last one is answered).
        private func forget(_ connection: GRPCConnection, key: ConnectionKey) {
            connections.withLock { connections in
                if let current = connections[key], current.future === connection.future { connections[key] = nil }
            }
        }

        /// The endpoint's connection, made if there is none (one attempt at a time makes it; the
        /// others wait for it).
        private func connection(to key: ConnectionKey, index: Int, timeout: Duration) async throws -> (GRPCConnection, reused: Bool) {
            let endpoint = key.endpoint
            for _ in 0..<3 {
                // The slot's own loop, for the cache entry and the connection: taking `group.next()`
                // for each put every connection of a two-loop group on the same loop (measured: one
                // thread carried all of a 1 M-span run while the other idled).
                let loop = loops.isEmpty ? group.next() : loops[key.slot % loops.count]
                enum Found {
                    case ready(GRPCConnection)
                    case wait(EventLoopFuture<GRPCConnection>)
                    case make(EventLoopPromise<GRPCConnection>)
                }
                let found = connections.withLock { connections -> Found in
                    switch connections[key] {
                    case .ready(let connection)?: return .ready(connection)
                    case .connecting(let future)?: return .wait(future)
                    case nil:
                        let promise = loop.makePromise(of: GRPCConnection.self)
                        connections[key] = .connecting(promise.futureResult)
                        return .make(promise)
                    }
                }
                let promise: EventLoopPromise<GRPCConnection>
                switch found {
                case .ready(let connection):
                    // The common case: no await, no hop to the event loop.
                    if connection.acceptsCalls { return (connection, true) }
                    forget(connection, key: key)
                    continue
                case .wait(let future):
                    if let connection = try? await future.get(), connection.acceptsCalls { return (connection, true) }
                    connections.withLock { if $0[key]?.future === future { $0[key] = nil } }
                    continue
                case .make(let made):
                    promise = made
                }
                let future = promise.futureResult
                do {
                    let connection = try await connect(to: endpoint, on: loop, index: index, timeout: timeout, future: future)
                    connections.withLock { if $0[key]?.future === future { $0[key] = .ready(connection) } }
                    promise.succeed(connection)
                    return (connection, false)
                } catch {
                    connections.withLock { if $0[key]?.future === future { $0[key] = nil } }
                    promise.fail(error)
                    throw error
                }
            }
            throw OTLPExportError(code: .connectionFailed, message: "\(endpoint.host):\(endpoint.port): no connection after three tries")
        }

        private func connect(
            to endpoint: HTTPEndpoint, on loop: any EventLoop, index: Int, timeout: Duration, future: EventLoopFuture<GRPCConnection>
        ) async throws -> GRPCConnection {
            #if TLS
                let tls = tlsClients[index]
            #endif
            let lastStreamID = self.lastStreamID
            let calls = NIOLockedValueBox<NIOLoopBound<GRPCCallsHandler>?>(nil)
            let state = GRPCConnectionState()
            let failure = Connection.Failure(nil)
            let label = "\(endpoint.host):\(endpoint.port)"
            let bootstrap = ClientBootstrap(group: loop)
                .connectTimeout(.nanoseconds(timeout.nanoseconds))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        #if TLS
                            if let tls { try tls.addHandlers(to: channel, host: endpoint.host) }
                        #endif
                        let handler = GRPCCallsHandler(state: state, lastStreamID: lastStreamID)
                        try channel.pipeline.syncOperations.addHandlers([
                            NIOHTTP2Handler(mode: .client), handler, GRPCConnectionErrorHandler(endpoint: label, failure: failure)
                        ])
                        calls.withLockedValue { $0 = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                    }
                }
            // The set-up is not the collector's answer time: the export window leaves it out.
            let start = monotonicNanos()
            defer { TransportTiming.current?.setupNanoseconds.add(Int64(clamping: monotonicNanos() &- start), ordering: .relaxed) }
            let channel: any Channel
            do {
                channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
            } catch {
                throw OTLPExportError(code: .connectionFailed, message: "\(label): \(error)")
            }
            #if TLS
                if let tls { try await tls.awaitHandshake(on: channel, endpoint: endpoint, group: group, timeout: timeout) }
            #endif
            guard let made = calls.withLockedValue({ $0 }) else {
                channel.close(promise: nil)
                throw OTLPExportError(code: .connectionFailed, message: "\(label): no HTTP/2 handler")
            }
            return GRPCConnection(channel: channel, calls: made, state: state, failure: failure, future: future)
        }
    }

    /// An HTTP/2 connection of ``OTLPGRPCExporter``.
    struct GRPCConnection: Sendable {
        var channel: any Channel
        /// Its calls' handler (used on the channel's event loop).
        var calls: NIOLoopBound<GRPCCallsHandler>
        var state: GRPCConnectionState
        /// The connection's own failure (an endpoint that does not speak HTTP/2 fails here).
        var failure: Connection.Failure
        /// The cache entry it was made for.
        var future: EventLoopFuture<GRPCConnection>

        /// Whether a new call may start on it: open, and no GOAWAY.
        var acceptsCalls: Bool { channel.isActive && !state.goneAway.load(ordering: .relaxed) }
    }

    /// What the exporter reads of a connection's handler from outside its event loop.
    final class GRPCConnectionState: Sendable {
        /// Set by the handler when the collector sent GOAWAY or the stream ids ran out (relaxed: a
        /// call that reaches the handler after it fails as unprocessed and goes again on another
        /// connection).
        let goneAway = Atomic<Bool>(false)
    }

    /// Keeps the first error of an HTTP/2 connection, in words a user can act on, and closes it.
    final class GRPCConnectionErrorHandler: ChannelInboundHandler {
        typealias InboundIn = Any
        private let endpoint: String
        private let failure: Connection.Failure

        init(endpoint: String, failure: Connection.Failure) {
            self.endpoint = endpoint
            self.failure = failure
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // Errors of one stream (a stream waiting for a free slot when the collector sent
            // GOAWAY, a frame for a stream already reset) fail that stream's call only: the other
            // calls on the connection go on.
            switch error {
            case is NIOHTTP2Errors.CreatedStreamAfterGoaway, is NIOHTTP2Errors.NoSuchStream, is NIOHTTP2Errors.StreamClosed,
                is NIOHTTP2Errors.StreamError:
                return
            default:
                break
            }
            let described: OTLPExportError
            if let tls = tlsFailure(error, endpoint: endpoint) {
                described = tls
            } else if String(reflecting: type(of: error)).contains("NIOHTTP2") {
                described = OTLPExportError(
                    code: .invalidResponse,
                    message: "\(endpoint) does not speak HTTP/2 (gRPC needs it; an OTLP/HTTP collector listens on another port, "
                        + "usually 4318): \(error)")
            } else {
                described = OTLPExportError(code: .connectionClosed, message: "\(endpoint): \(error)")
            }
            failure.withLockedValue { $0 = $0 ?? described }
            context.close(promise: nil)
        }
    }
#endif
