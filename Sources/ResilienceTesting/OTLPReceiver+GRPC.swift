import NIOCore
import NIOHTTP1
import Resilience
import Synchronization

#if GRPC
    import NIOHPACK
    import NIOHTTP2
#endif

extension OTLPReceiver {
    /// Thrown by ``start(port:retention:countIDs:tls:protocol:maximumConcurrentStreams:receiveWindow:)`` for gRPC in a build without the
    /// package trait `GRPC`.
    public struct GRPCUnavailableError: Error, CustomStringConvertible {
        public var description: String { "this build of Spillway leaves out gRPC (the package trait GRPC)" }
    }
}

#if GRPC
    /// What the streams of one receiver connection share (on its event loop).
    final class GRPCReceiverConnection {
        var highestStreamID = HTTP2StreamID(0)
        var calls = 0
        /// The last stream named in the GOAWAY sent, if one was.
        var lastTaken: HTTP2StreamID?
    }

    /// The receiver's HTTP/2 side: every stream is one unary OTLP `Export` call.
    func addGRPCServerHandlers(to channel: any Channel, box: ReceiverBox, maximumConcurrentStreams: Int, receiveWindow: Int?) throws {
        // Windows as a collector sized for throughput sets them (the HTTP/2 default of 64 KiB per
        // connection would hold a client to one 30 KB request per round trip).
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: maximumConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: receiveWindow ?? 1 << 20),
            HTTP2Setting(parameter: .maxFrameSize, value: 1 << 20)
        ]
        connection.targetWindowSize = receiveWindow ?? 16 << 20
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = receiveWindow ?? 1 << 20
        let calls = NIOLoopBound(GRPCReceiverConnection(), eventLoop: channel.eventLoop)
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connection, streamConfiguration: stream
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(GRPCReceiverStreamHandler(box: box, connection: calls.value))
            }
        }
    }

    /// One gRPC call: its headers and message are collected, then answered as the receiver's
    /// ``OTLPReceiver/Behavior`` says, with gRPC statuses for failures (503 is `UNAVAILABLE`, 429
    /// `RESOURCE_EXHAUSTED` with `RetryInfo` when a `Retry-After` is given, 401 `UNAUTHENTICATED`…).
    final class GRPCReceiverStreamHandler: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload

        private let box: ReceiverBox
        private var headers: HPACKHeaders?
        /// The message's 5-byte prefix (compressed flag, length), then the message itself: the
        /// data frames are copied once, as the HTTP side copies a body once.
        private var prefix: [UInt8] = []
        private var message: [UInt8] = []

        private let connection: GRPCReceiverConnection

        init(box: ReceiverBox, connection: GRPCReceiverConnection) {
            self.box = box
            self.connection = connection
        }

        private var streamID = HTTP2StreamID(0)

        func handlerAdded(context: ChannelHandlerContext) {
            if let id = try? context.channel.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID) {
                streamID = id
                connection.highestStreamID = max(connection.highestStreamID, id)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .headers(let frame):
                headers = frame.headers
                if frame.endStream { handle(context: context) }
            case .data(let frame):
                if case .byteBuffer(var buffer) = frame.data {
                    while prefix.count < 5, let byte = buffer.readInteger(as: UInt8.self) { prefix.append(byte) }
                    if message.isEmpty, prefix.count == 5 {
                        let length = Int(prefix[1]) << 24 | Int(prefix[2]) << 16 | Int(prefix[3]) << 8 | Int(prefix[4])
                        message.reserveCapacity(min(length, 64 << 20))
                    }
                    buffer.withUnsafeReadableBytes { message.append(contentsOf: $0) }
                }
                if frame.endStream { handle(context: context) }
            default:
                break
            }
        }

        private func handle(context: ChannelHandlerContext) {
            guard let headers, let receiver = box.receiver.withLock({ $0 }) else { return }
            if let last = connection.lastTaken, streamID > last {
                // Opened after the GOAWAY that said this connection takes nothing above `last`.
                context.writeAndFlush(wrapOutboundOut(.rstStream(.refusedStream)), promise: nil)
                return
            }
            let grpcPath = headers.first(name: ":path") ?? ""
            let path =
                switch grpcPath {
                case "/opentelemetry.proto.collector.trace.v1.TraceService/Export": "/v1/traces"
                case "/opentelemetry.proto.collector.logs.v1.LogsService/Export": "/v1/logs"
                default: grpcPath
                }
            var http = HTTPHeaders()
            for (name, value, _) in headers where !name.hasPrefix(":") { http.add(name: name, value: value) }
            // The one length-prefixed message, inflated if its flag says so.
            var message = self.message
            if prefix.count == 5, prefix[0] == 1 {
                guard headers.first(name: "grpc-encoding") == "gzip", let inflated = gzipDecompress(message, maximumSize: 256 << 20) else {
                    status(context, code: 3, message: "compressed message is not gzip")
                    return
                }
                message = inflated
            }
            switch receiver.behaviorForNextRequest(path: path) {
            case .accept:
                answer(receiver.accept(path: path, headers: http, body: message, rejected: 0, message: ""), receiver, context)
            case .delay(let duration):
                let answer = receiver.accept(path: path, headers: http, body: message, rejected: 0, message: "")
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let (seconds, attoseconds) = duration.components
                context.eventLoop.scheduleTask(in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)) {
                    let (handler, context) = bound.value
                    handler.answer(answer, receiver, context)
                }
            case .partialSuccess(let rejected, let text):
                answer(receiver.accept(path: path, headers: http, body: message, rejected: rejected, message: text), receiver, context)
            case .fail(let code, let retryAfter):
                answer(.status(code, retryAfter: retryAfter, message: "receiver told to fail with \(code)"), receiver, context)
            case .failEchoingHeader(let code, let header):
                let echoed = headers.first(name: header.lowercased()) ?? "(none)"
                answer(.status(code, retryAfter: nil, message: "invalid \(header): \(echoed)"), receiver, context)
            case .goAway(let every):
                answer(receiver.accept(path: path, headers: http, body: message, rejected: 0, message: ""), receiver, context)
                connection.calls += 1
                guard connection.calls % max(1, every) == 0, connection.lastTaken == nil, let parent = context.channel.parent else {
                    return
                }
                // As a collector ending a connection gracefully: the last stream it names is the
                // highest it has seen, so every stream it took is answered and none above it was.
                let last = connection.highestStreamID
                connection.lastTaken = last
                parent.writeAndFlush(
                    HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: last, errorCode: .noError, opaqueData: nil))
                )
                .whenComplete { _ in }
                parent.eventLoop.scheduleTask(in: .milliseconds(200)) { parent.close(promise: nil) }
            case .failGRPC(let code, let retryDelay):
                receiver.noteStatus(200)
                status(context, code: code, message: "receiver told to answer gRPC status \(code)", retryDelay: retryDelay)
            case .resetConnection, .closeMidResponse:
                context.channel.parent?.close(promise: nil)
            case .garbage:
                receiver.noteStatus(200)
                send(context, message: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x01, 0x02])
            case .randomFaults, .failFirst:
                status(context, code: 13, message: "unreachable: resolved per request")
            }
        }

        private func answer(_ answer: OTLPReceiver.Answer, _ receiver: OTLPReceiver, _ context: ChannelHandlerContext) {
            switch answer {
            case .ok(let bytes):
                receiver.noteStatus(200)
                send(context, message: bytes)
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
                status(context, code: code, message: message, retryDelay: retryAfter.flatMap { Int64($0) }.map { .seconds($0) })
            default:
                context.channel.parent?.close(promise: nil)
            }
        }

        /// An `OK` answer carrying `message`.
        private func send(_ context: ChannelHandlerContext, message: [UInt8]) {
            var buffer = context.channel.allocator.buffer(capacity: 5 + message.count)
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt32(message.count))
            buffer.writeBytes(message)
            let headers: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
            context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: ["grpc-status": "0"], endStream: true))), promise: nil)
        }

        /// A trailers-only answer with `code` (and a `RetryInfo` in the status details).
        private func status(_ context: ChannelHandlerContext, code: Int, message: String, retryDelay: Duration? = nil) {
            var headers: HPACKHeaders = [
                ":status": "200", "content-type": "application/grpc", "grpc-status": "\(code)",
                "grpc-message": GRPCTestWire.percentEncoded(message)
            ]
            if let retryDelay { headers.add(name: "grpc-status-details-bin", value: GRPCTestWire.statusDetails(code, message, retryDelay)) }
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
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
