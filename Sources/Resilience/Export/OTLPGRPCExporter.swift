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
    /// Thread-safety: safe to call concurrently. Does not retry: one layer of the chain owns retries.
    public final class OTLPGRPCExporter: TelemetryExporter {
        public let name = "otlp_grpc"
        let configuration: OTLPExporterConfiguration
        private let endpoints: [HTTPEndpoint]  // by signal: traces, logs
        private let settings: [OTLPSignalSettings]
        #if TLS
            private let tlsClients: [TLSClient?]
        #endif
        private let group: any EventLoopGroup
        /// The group's loops: slot `i` of an endpoint connects on `loops[i % loops.count]`.
        private let loops: [any EventLoop]
        private let connections = Mutex<[ConnectionKey: EventLoopFuture<GRPCConnection>]>([:])
        /// Calls take the connections of an endpoint in turn: one HTTP/2 connection is served by one
        /// event-loop thread at each end, and a few keep both cores busy (measured: one connection
        /// carried 1.0 M spans/s where HTTP/1.1's parallel connections carried 2.0 M).
        package let connectionsPerEndpoint = max(1, min(4, System.coreCount))
        private let nextSlot = Atomic<Int>(0)

        struct ConnectionKey: Hashable {
            var endpoint: HTTPEndpoint
            var slot: Int
        }
        private let isShutDown = Atomic<Bool>(false)

        /// Makes an exporter. Connections are opened on first use.
        /// - Throws: ``ConfigurationError`` if an endpoint or a value is invalid, or a TLS file cannot be read.
        public convenience init(configuration: OTLPExporterConfiguration) throws(ConfigurationError) {
            try self.init(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton)
        }

        init(configuration: OTLPExporterConfiguration, group: any EventLoopGroup) throws(ConfigurationError) {
            try configuration.validate()
            self.configuration = configuration
            let signals: [TelemetrySignal] = [.traces, .logs]
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
            #if TLS
                var clients: [TLSClient?] = []
                for (signal, endpoint) in zip(signals, endpoints) {
                    let own = signal == .traces ? configuration.traces.tls : configuration.logs.tls
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
            let index = batch.signal == .traces ? 0 : 1
            let endpoint = endpoints[index]
            let settings = settings[index]
            var payload = batch.body
            let compressed = settings.compression == .gzip
            if compressed { payload = gzipCompress(batch.body).readableBytesView.map { $0 } }
            var message = ByteBufferAllocator().buffer(capacity: 5 + payload.count)
            message.writeInteger(UInt8(compressed ? 1 : 0))
            message.writeInteger(UInt32(payload.count))
            message.writeBytes(payload)
            var headers: HPACKHeaders = [
                ":method": "POST", ":scheme": endpoint.usesTLS ? "https" : "http", ":path": GRPCWire.path(batch.signal),
                ":authority": endpoint.hostHeader, "content-type": "application/grpc", "te": "trailers",
                "user-agent": "spillway/\(spillwayVersion)", "grpc-timeout": GRPCWire.timeoutHeader(settings.timeout),
                "grpc-accept-encoding": "gzip"
            ]
            if compressed { headers.add(name: "grpc-encoding", value: "gzip") }
            for (name, value) in settings.headers { headers.add(name: name.lowercased(), value: value) }
            let timeout = TimeAmount.nanoseconds(settings.timeout.nanoseconds)

            // A connection the collector closed (GOAWAY, idle timeout) is not the collector failing:
            // the call goes once more on a new one.
            let slot = (nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue & Int.max) % connectionsPerEndpoint
            let key = ConnectionKey(endpoint: endpoint, slot: slot)
            for attempt in 0..<2 {
                let (connection, reused) = try await self.connection(to: key, index: index, timeout: settings.timeout)
                let promise = connection.channel.eventLoop.makePromise(of: GRPCCallHandler.Response.self)
                let stream = connection.channel.eventLoop.makePromise(of: (any Channel).self)
                stream.futureResult.whenFailure { error in
                    var failure = OTLPExportError(code: .connectionClosed, message: "no stream for the call: \(error)")
                    failure.beforeAnswer = true
                    promise.fail(failure)
                }
                let request = headers
                connection.multiplexer.createStreamChannel(promise: stream) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            GRPCCallHandler(request: request, message: message, timeout: timeout, promise: promise))
                    }
                }
                do {
                    let response = try await promise.futureResult.get()
                    return try interpret(response, signal: batch.signal)
                } catch var error as OTLPExportError where error.code == .connectionClosed {
                    forget(connection, key: key)
                    if reused && error.beforeAnswer && attempt == 0 { continue }
                    if let cause = connection.failure.withLockedValue({ $0 }) {
                        // The connection failed under the call: an endpoint that does not speak HTTP/2 ends here.
                        error = cause
                    }
                    throw error
                }
            }
            throw OTLPExportError(code: .connectionClosed, message: "the connection closed twice before an answer")
        }

        public func shutdown() async {
            isShutDown.store(true, ordering: .relaxed)
            let open = connections.withLock { connections in
                defer { connections.removeAll() }
                return Array(connections.values)
            }
            for future in open { if let connection = try? await future.get() { try? await connection.channel.close() } }
        }

        /// The event loops of the open connections, one entry per connection (for tests).
        package func connectionEventLoops() async -> [ObjectIdentifier] {
            var loops: [ObjectIdentifier] = []
            for future in connections.withLock({ Array($0.values) }) {
                if let connection = try? await future.get() { loops.append(ObjectIdentifier(connection.channel.eventLoop)) }
            }
            return loops
        }

        private func interpret(_ response: GRPCCallHandler.Response, signal: TelemetrySignal) throws -> ExportResponse {
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

        private func forget(_ connection: GRPCConnection, key: ConnectionKey) {
            connection.channel.close(promise: nil)
            connections.withLock { connections in
                if let current = connections[key], current === connection.future { connections[key] = nil }
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
                let promise = loop.makePromise(of: GRPCConnection.self)
                let (future, mine) = connections.withLock { connections in
                    if let existing = connections[key] { return (existing, false) }
                    connections[key] = promise.futureResult
                    return (promise.futureResult, true)
                }
                guard mine else {
                    promise.fail(CancellationError())  // unused
                    if let connection = try? await future.get(), connection.channel.isActive { return (connection, true) }
                    connections.withLock { if $0[key] === future { $0[key] = nil } }
                    continue
                }
                do {
                    let connection = try await connect(to: endpoint, on: loop, index: index, timeout: timeout, future: future)
                    promise.succeed(connection)
                    return (connection, false)
                } catch {
                    connections.withLock { if $0[key] === future { $0[key] = nil } }
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
            let multiplexer = NIOLockedValueBox<NIOHTTP2Handler.StreamMultiplexer?>(nil)
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
                        let made = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                            mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                        ) { pushed in pushed.close() }
                        multiplexer.withLockedValue { $0 = made }
                        try channel.pipeline.syncOperations.addHandler(GRPCConnectionErrorHandler(endpoint: label, failure: failure))
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
            guard let made = multiplexer.withLockedValue({ $0 }) else {
                channel.close(promise: nil)
                throw OTLPExportError(code: .connectionFailed, message: "\(label): no HTTP/2 multiplexer")
            }
            return GRPCConnection(channel: channel, multiplexer: made, failure: failure, future: future)
        }
    }

    /// An HTTP/2 connection of ``OTLPGRPCExporter``.
    struct GRPCConnection: Sendable {
        var channel: any Channel
        var multiplexer: NIOHTTP2Handler.StreamMultiplexer
        /// The connection's own failure (an endpoint that does not speak HTTP/2 fails here).
        var failure: Connection.Failure
        /// The cache entry it was made for.
        var future: EventLoopFuture<GRPCConnection>
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
