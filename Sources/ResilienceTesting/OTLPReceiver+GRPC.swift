import NIOCore
import NIOHTTP1
import Resilience
import Synchronization

#if GRPC
    import NIOHPACK
    import NIOHTTP2
#endif

extension OTLPReceiver {
    /// Thrown by
    /// ``start(port:retention:countIDs:tls:protocol:maximumConcurrentStreams:receiveWindow:ownEventLoops:)``
    /// for gRPC in a build without the package trait `GRPC`.
    public struct GRPCUnavailableError: Error, CustomStringConvertible {
        public var description: String { "this build of Spillway leaves out gRPC (the package trait GRPC)" }
    }
}

#if GRPC
    /// The receiver's HTTP/2 side: every stream is one unary OTLP `Export` call.
    func addGRPCServerHandlers(to channel: any Channel, box: ReceiverBox, maximumConcurrentStreams: Int, receiveWindow: Int?) throws {
        // Windows as a collector sized for throughput sets them (the HTTP/2 default of 64 KiB per
        // connection would hold a client to one 30 KB request per round trip).
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        let streamWindow = receiveWindow ?? 1 << 20
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: maximumConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: streamWindow),
            HTTP2Setting(parameter: .maxFrameSize, value: 1 << 20)
        ]
        try channel.pipeline.syncOperations.addHandlers([
            NIOHTTP2Handler(mode: .server, connectionConfiguration: connection),
            GRPCReceiverHandler(box: box, connectionWindow: receiveWindow ?? 16 << 20, streamWindow: streamWindow)
        ])
    }

    /// The calls of one receiver connection, as frames on the connection's channel (no stream
    /// channel per call: as the exporter's `GRPCCallsHandler`, which measured NIO's multiplexer at
    /// a fifth of its event loop's time). Each stream's headers and message are collected, then
    /// answered as the receiver's ``OTLPReceiver/Behavior`` says, with gRPC statuses for failures
    /// (503 is `UNAVAILABLE`, 429 `RESOURCE_EXHAUSTED` with `RetryInfo` when a `Retry-After` is
    /// given, 401 `UNAUTHENTICATED`…). Answers written while reading are flushed once, when the
    /// read ends.
    final class GRPCReceiverHandler: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame
        typealias OutboundOut = HTTP2Frame

        private struct Stream {
            var headers: HPACKHeaders
            /// The message's 5-byte prefix (compressed flag, then length), as far as it came.
            var prefix: UInt64 = 0
            var prefixBytes = 0
            /// The message, copied once from the data frames (as the HTTP side copies a body once).
            var message: [UInt8] = []
            /// Bytes read on the stream whose window was not given back yet.
            var unreturned = 0
        }

        private let box: ReceiverBox
        private var streams: [HTTP2StreamID: Stream] = [:]
        /// Set once the streams a GOAWAY named are all answered and the close is scheduled.
        private var closing = false
        private var highestStreamID = HTTP2StreamID(0)
        private var calls = 0
        /// The last stream named in the GOAWAY sent, if one was.
        private var lastTaken: HTTP2StreamID?
        private var windows: HTTP2ReceiveWindows
        private var flushPending = false
        /// Set by ``OTLPReceiver/Behavior/goAway(every:)``: a GOAWAY goes when the read ends.
        private var goAwayDue = false
        private var sentInitialWindow = false

        init(box: ReceiverBox, connectionWindow: Int, streamWindow: Int) {
            self.box = box
            self.windows = HTTP2ReceiveWindows(connectionTarget: connectionWindow, streamTarget: streamWindow)
        }

        func channelActive(context: ChannelHandlerContext) {
            // The connection's window starts at 64 KiB whatever the settings say: one WINDOW_UPDATE
            // opens it to the target.
            if !sentInitialWindow, let increment = windows.initialConnectionIncrement {
                sentInitialWindow = true
                context.writeAndFlush(
                    wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: increment))), promise: nil
                )
            }
            context.fireChannelActive()
        }

        func handlerAdded(context: ChannelHandlerContext) {
            if context.channel.isActive { channelActive(context: context) }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            let id = frame.streamID
            switch frame.payload {
            case .headers(let headers):
                guard streams[id] == nil else { return }  // trailers from a client: none expected
                highestStreamID = max(highestStreamID, id)
                streams[id] = Stream(headers: headers.headers)
                if headers.endStream { handle(id, context: context) }
            case .data(let data):
                // Taken out while it grows, so that its message is not copied on write.
                var stream = streams.removeValue(forKey: id)
                var unreturned = stream?.unreturned ?? 0
                // What was read is given back (a message is taken whole); flushed when the read ends.
                _ = windows.read(data, on: id, streamUnreturned: &unreturned) { write($0, context) }
                guard var stream = stream.take() else { return }
                stream.unreturned = unreturned
                if case .byteBuffer(var buffer) = data.data {
                    while stream.prefixBytes < 5, let byte = buffer.readInteger(as: UInt8.self) {
                        stream.prefix = stream.prefix << 8 | UInt64(byte)
                        stream.prefixBytes += 1
                        if stream.prefixBytes == 5 { stream.message.reserveCapacity(min(Int(stream.prefix & 0xFFFF_FFFF), 64 << 20)) }
                    }
                    buffer.withUnsafeReadableBytes { stream.message.append(contentsOf: $0) }
                }
                streams[id] = stream
                if data.endStream { handle(id, context: context) }
            case .rstStream:
                streams[id] = nil
            default:
                break
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            if goAwayDue, lastTaken == nil {
                // As a collector ending a connection gracefully, once what it read is taken: the
                // last stream it names is the highest it has seen, so every stream it took is
                // answered and none above it was.
                lastTaken = highestStreamID
                write(
                    HTTP2Frame(
                        streamID: .rootStream, payload: .goAway(lastStreamID: highestStreamID, errorCode: .noError, opaqueData: nil)),
                    context)
                // A backstop; the connection closes as soon as every stream it took is answered.
                let channel = context.channel
                context.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
            }
            if flushPending {
                flushPending = false
                context.flush()
            }
            // Gracefully, as a collector does: once every stream the GOAWAY named is answered (a
            // fixed 200 ms cut off calls whose last frames a loaded machine had not read yet: their
            // answers were lost, and the exporter sent them again).
            if let last = lastTaken, !closing, !streams.keys.contains(where: { $0 <= last }) {
                closing = true
                // The answers were flushed above; a moment for the socket to take them (a close
                // drops writes still queued). The exporter usually closes first, once answered.
                let channel = context.channel
                context.eventLoop.scheduleTask(in: .milliseconds(500)) { channel.close(promise: nil) }
            }
            context.fireChannelReadComplete()
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let closed = event as? StreamClosedEvent { streams[closed.streamID] = nil }
            context.fireUserInboundEventTriggered(event)
        }

        private func handle(_ id: HTTP2StreamID, context: ChannelHandlerContext) {
            guard let stream = streams.removeValue(forKey: id), let receiver = box.receiver.withLock({ $0 }) else { return }
            let headers = stream.headers
            if let last = lastTaken, id > last {
                // Opened after the GOAWAY that said this connection takes nothing above `last`.
                write(HTTP2Frame(streamID: id, payload: .rstStream(.refusedStream)), context)
                return
            }
            let grpcPath = headers.first(name: ":path") ?? ""
            let path =
                switch grpcPath {
                case "/opentelemetry.proto.collector.trace.v1.TraceService/Export": "/v1/traces"
                case "/opentelemetry.proto.collector.logs.v1.LogsService/Export": "/v1/logs"
                case "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export": "/v1/metrics"
                default: grpcPath
                }
            var http = HTTPHeaders()
            for (name, value, _) in headers where !name.hasPrefix(":") { http.add(name: name, value: value) }
            // The one length-prefixed message, inflated if its flag says so.
            var message = stream.message
            if stream.prefixBytes == 5, stream.prefix >> 32 == 1 {
                guard headers.first(name: "grpc-encoding") == "gzip", let inflated = gzipDecompress(message, maximumSize: 256 << 20) else {
                    status(id, context, code: 3, message: "compressed message is not gzip")
                    return
                }
                message = inflated
            }
            switch receiver.behaviorForNextRequest(path: path) {
            case .accept:
                answer(id, receiver.accept(path: path, headers: http, body: message, rejected: 0, message: ""), receiver, context)
            case .delay(let duration):
                let answer = receiver.accept(path: path, headers: http, body: message, rejected: 0, message: "")
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let (seconds, attoseconds) = duration.components
                context.eventLoop.scheduleTask(in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)) {
                    let (handler, context) = bound.value
                    handler.answer(id, answer, receiver, context)
                    context.flush()
                }
            case .partialSuccess(let rejected, let text):
                answer(id, receiver.accept(path: path, headers: http, body: message, rejected: rejected, message: text), receiver, context)
            case .fail(let code, let retryAfter):
                answer(id, .status(code, retryAfter: retryAfter, message: "receiver told to fail with \(code)"), receiver, context)
            case .failEchoingHeader(let code, let header):
                let echoed = headers.first(name: header.lowercased()) ?? "(none)"
                answer(id, .status(code, retryAfter: nil, message: "invalid \(header): \(echoed)"), receiver, context)
            case .goAway(let every):
                answer(id, receiver.accept(path: path, headers: http, body: message, rejected: 0, message: ""), receiver, context)
                calls += 1
                if calls % max(1, every) == 0 { goAwayDue = true }
            case .failGRPC(let code, let retryDelay):
                receiver.noteStatus(200)
                status(id, context, code: code, message: "receiver told to answer gRPC status \(code)", retryDelay: retryDelay)
            case .resetConnection, .closeMidResponse:
                context.close(promise: nil)
            case .garbage:
                receiver.noteStatus(200)
                send(id, context, message: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x01, 0x02])
            case .randomFaults, .failFirst:
                status(id, context, code: 13, message: "unreachable: resolved per request")
            }
        }

        private func answer(_ id: HTTP2StreamID, _ answer: OTLPReceiver.Answer, _ receiver: OTLPReceiver, _ context: ChannelHandlerContext)
        {
            switch answer {
            case .ok(let bytes):
                receiver.noteStatus(200)
                send(id, context, message: bytes)
            case .status(let http, let retryAfter, let message):
                receiver.noteStatus(http)
                let code: Int =
                    switch http {
                    case 400: 3
                    case 401: 16
                    case 403: 7
                    case 404: 12
                    case 429: 8
                    case 502, 503, 504: 14
                    case 500...599: 13
                    default: 2
                    }
                status(id, context, code: code, message: message, retryDelay: retryAfter.flatMap { Int64($0) }.map { .seconds($0) })
            default:
                context.close(promise: nil)
            }
        }

        /// Written now, flushed when the read ends (or by a delayed answer's own flush).
        private func write(_ frame: HTTP2Frame, _ context: ChannelHandlerContext) {
            context.write(wrapOutboundOut(frame), promise: nil)
            flushPending = true
        }

        private static let okHeaders: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
        private static let okTrailers: HPACKHeaders = ["grpc-status": "0"]

        /// An `OK` answer carrying `message`.
        private func send(_ id: HTTP2StreamID, _ context: ChannelHandlerContext, message: [UInt8]) {
            var buffer = context.channel.allocator.buffer(capacity: 5 + message.count)
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt32(message.count))
            buffer.writeBytes(message)
            write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: Self.okHeaders))), context)
            write(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(buffer)))), context)
            write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: Self.okTrailers, endStream: true))), context)
        }

        /// A trailers-only answer with `code` (and a `RetryInfo` in the status details).
        private func status(_ id: HTTP2StreamID, _ context: ChannelHandlerContext, code: Int, message: String, retryDelay: Duration? = nil)
        {
            var headers: HPACKHeaders = [
                ":status": "200", "content-type": "application/grpc", "grpc-status": "\(code)",
                "grpc-message": GRPCTestWire.percentEncoded(message)
            ]
            if let retryDelay { headers.add(name: "grpc-status-details-bin", value: GRPCTestWire.statusDetails(code, message, retryDelay)) }
            write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers, endStream: true))), context)
        }
    }

    /// The receiver's side of gRPC's encodings.
    enum GRPCTestWire {
        static func percentEncoded(_ text: String) -> String {
            var out = ""
            for byte in text.utf8 {
                if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                    out.unicodeScalars.append(Unicode.Scalar(byte))
                } else {
                    let hex = Array("0123456789ABCDEF".utf8)
                    out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
                }
            }
            return out
        }

        /// `google.rpc.Status { code = 1; message = 2; details = 3 [Any { type_url = 1; value = 2: RetryInfo }] }`, base64.
        static func statusDetails(_ code: Int, _ message: String, _ delay: Duration) -> String {
            func field(_ number: UInt64, _ bytes: [UInt8]) -> [UInt8] { varint(number << 3 | 2) + varint(UInt64(bytes.count)) + bytes }
            let (seconds, attoseconds) = delay.components
            let duration = [0x08] + varint(UInt64(seconds)) + [0x10] + varint(UInt64(attoseconds / 1_000_000_000))
            let retryInfo = field(1, duration)
            let any = field(1, Array("type.googleapis.com/google.rpc.RetryInfo".utf8)) + field(2, retryInfo)
            let status = [0x08] + varint(UInt64(code)) + field(2, Array(message.utf8)) + field(3, any)
            return base64(status)
        }

        static func base64(_ bytes: [UInt8]) -> String {
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
            var out: [UInt8] = []
            var i = 0
            while i < bytes.count {
                let n = min(3, bytes.count - i)
                let b0 = Int(bytes[i]), b1 = n > 1 ? Int(bytes[i + 1]) : 0, b2 = n > 2 ? Int(bytes[i + 2]) : 0
                out.append(alphabet[b0 >> 2])
                out.append(alphabet[(b0 & 3) << 4 | b1 >> 4])
                out.append(n > 1 ? alphabet[(b1 & 15) << 2 | b2 >> 6] : UInt8(ascii: "="))
                out.append(n > 2 ? alphabet[b2 & 63] : UInt8(ascii: "="))
                i += 3
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
#else
    func addGRPCServerHandlers(to channel: any Channel, box: ReceiverBox, maximumConcurrentStreams: Int, receiveWindow: Int?) throws {
        throw OTLPReceiver.GRPCUnavailableError()
    }
#endif
