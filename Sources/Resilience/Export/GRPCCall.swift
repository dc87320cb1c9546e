#if GRPC
    import NIOCore
    import NIOHPACK
    import NIOHTTP2

    /// One unary gRPC call on its own HTTP/2 stream: sends the request headers and the one
    /// length-prefixed message, collects the response headers, message and trailers, and completes
    /// the promise exactly once (answer, timeout, reset, error or close, whichever comes first).
    final class GRPCCallHandler: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload

        /// What came back: the response headers, the trailers (the same block for a
        /// trailers-only answer) and the data frames' bytes.
        struct Response: Sendable {
            var headers: HPACKHeaders?
            var trailers: HPACKHeaders?
            var body: [UInt8] = []
        }

        private static let maximumResponseBody = 4 << 20
        private let request: HPACKHeaders
        private let message: ByteBuffer
        private let timeout: TimeAmount
        private var promise: EventLoopPromise<Response>?
        private var response = Response()
        private var timeoutTask: Scheduled<Void>?
        private var sent = false

        init(request: HPACKHeaders, message: ByteBuffer, timeout: TimeAmount, promise: EventLoopPromise<Response>) {
            self.request = request
            self.message = message
            self.timeout = timeout
            self.promise = promise
        }

        func handlerAdded(context: ChannelHandlerContext) {
            if context.channel.isActive { send(context: context) }
        }

        func channelActive(context: ChannelHandlerContext) {
            send(context: context)
            context.fireChannelActive()
        }

        private func send(context: ChannelHandlerContext) {
            guard !sent else { return }
            sent = true
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let timeout = self.timeout
            timeoutTask = context.eventLoop.scheduleTask(in: timeout) {
                let (handler, context) = loopBound.value
                handler.fail(OTLPExportError(code: .timeout, message: "no answer within \(timeout)"), context: context)
            }
            context.write(wrapOutboundOut(.headers(.init(headers: request))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(message), endStream: true))), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .headers(let headers):
                if response.headers == nil {
                    response.headers = headers.headers
                    if headers.endStream {
                        response.trailers = headers.headers
                        complete(context: context)
                    }
                } else {
                    response.trailers = headers.headers
                    complete(context: context)
                }
            case .data(let frame):
                if case .byteBuffer(var buffer) = frame.data {
                    guard response.body.count + buffer.readableBytes <= Self.maximumResponseBody else {
                        fail(
                            OTLPExportError(code: .invalidResponse, message: "response over \(Self.maximumResponseBody) bytes"),
                            context: context)
                        return
                    }
                    response.body += buffer.readBytes(length: buffer.readableBytes) ?? []
                }
                if frame.endStream { complete(context: context) }
            case .rstStream(let code):
                var failure = OTLPExportError(code: .connectionClosed, message: "the collector reset the stream (\(code))")
                failure.beforeAnswer = response.headers == nil
                fail(failure, context: context)
            default:
                break
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            var failure = OTLPExportError(code: .connectionClosed, message: "\(error)")
            failure.beforeAnswer = response.headers == nil
            fail(failure, context: context)
        }

        func channelInactive(context: ChannelHandlerContext) {
            var failure = OTLPExportError(code: .connectionClosed, message: "the stream closed before the answer was complete")
            failure.beforeAnswer = response.headers == nil
            fail(failure, context: context)
            context.fireChannelInactive()
        }

        private func complete(context: ChannelHandlerContext) {
            timeoutTask?.cancel()
            if let promise {
                self.promise = nil
                promise.succeed(response)
            }
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

    /// The gRPC wire details of OTLP: paths, message framing, status details.
    enum GRPCWire {
        static func path(_ signal: TelemetrySignal) -> String {
            signal == .traces
                ? "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
                : "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
        }

        /// `grpc-timeout`: at most 8 digits, in the coarsest unit that keeps them.
        static func timeoutHeader(_ timeout: Duration) -> String {
            let milliseconds = max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            return milliseconds < 100_000_000 ? "\(milliseconds)m" : "\(min(milliseconds / 1000, 99_999_999))S"
        }

        /// The one message of a response body: its 5-byte prefix checked, inflated if flagged.
        static func message(_ body: [UInt8], compressed encoding: String?) throws(OTLPExportError) -> [UInt8] {
            guard !body.isEmpty else { return [] }
            guard body.count >= 5 else { throw OTLPExportError(code: .invalidResponse, message: "gRPC message shorter than its prefix") }
            let length = Int(body[1]) << 24 | Int(body[2]) << 16 | Int(body[3]) << 8 | Int(body[4])
            guard body.count == 5 + length else {
                throw OTLPExportError(code: .invalidResponse, message: "gRPC message of \(body.count - 5) bytes, its prefix says \(length)")
            }
            let payload = Array(body[5...])
            guard body[0] == 1 else { return payload }
            guard encoding == "gzip", let inflated = gzipDecompress(payload, maximumSize: 1 << 20) else {
                throw OTLPExportError(code: .invalidResponse, message: "compressed gRPC message that is not gzip (\(encoding ?? "none"))")
            }
            return inflated
        }

        /// The delay of a `google.rpc.RetryInfo` among the details of a `google.rpc.Status`
        /// (`grpc-status-details-bin`, base64), if there is one.
        static func retryDelay(statusDetails: String) -> Duration? {
            guard let bytes = base64Decoded(statusDetails) else { return nil }
            return try? bytes.withUnsafeBytes { raw throws(ProtoDecodingError) -> Duration? in
                var status = ProtoReader(raw)
                while let field = try status.nextField() {
                    guard field.number == 3, field.wire == 2 else {
                        try status.skip(field.wire)
                        continue
                    }
                    var any = try status.message()  // google.protobuf.Any { type_url = 1; value = 2 }
                    var typeURL = ""
                    var delay: Duration?
                    while let inner = try any.nextField() {
                        switch (inner.number, inner.wire) {
                        case (1, 2): typeURL = try any.string()
                        case (2, 2):
                            var info = try any.message()  // RetryInfo { Duration retry_delay = 1 }
                            while let f = try info.nextField() {
                                guard f.number == 1, f.wire == 2 else {
                                    try info.skip(f.wire)
                                    continue
                                }
                                var duration = try info.message()  // Duration { int64 seconds = 1; int32 nanos = 2 }
                                var (seconds, nanos) = (Int64(0), Int64(0))
                                while let d = try duration.nextField() {
                                    switch (d.number, d.wire) {
                                    case (1, 0): seconds = Int64(bitPattern: try duration.varint())
                                    case (2, 0): nanos = Int64(Int32(truncatingIfNeeded: try duration.varint()))
                                    default: try duration.skip(d.wire)
                                    }
                                }
                                delay = .seconds(max(0, seconds)) + .nanoseconds(max(0, nanos))
                            }
                        default: try any.skip(inner.wire)
                        }
                    }
                    if typeURL.hasSuffix("/google.rpc.RetryInfo"), let delay { return delay }
                }
                return nil
            }
        }

        /// Standard or URL-safe base64, padded or not.
        static func base64Decoded(_ text: String) -> [UInt8]? {
            var values: [UInt8] = []
            values.reserveCapacity(text.utf8.count)
            for c in text.utf8 {
                switch c {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(c - UInt8(ascii: "A"))
                case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(c - UInt8(ascii: "a") + 26)
                case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(c - UInt8(ascii: "0") + 52)
                case UInt8(ascii: "+"), UInt8(ascii: "-"): values.append(62)
                case UInt8(ascii: "/"), UInt8(ascii: "_"): values.append(63)
                case UInt8(ascii: "="), UInt8(ascii: "\n"), UInt8(ascii: "\r"): continue
                default: return nil
                }
            }
            var out: [UInt8] = []
            var i = 0
            while i + 1 < values.count {
                let chunk = values[i..<min(i + 4, values.count)]
                let a = Int(chunk[chunk.startIndex]), b = Int(chunk[chunk.startIndex + 1])
                out.append(UInt8((a << 2 | b >> 4) & 0xFF))
                if chunk.count > 2 {
                    let c = Int(chunk[chunk.startIndex + 2])
                    out.append(UInt8((b << 4 | c >> 2) & 0xFF))
                    if chunk.count > 3 { out.append(UInt8((c << 6 | Int(chunk[chunk.startIndex + 3])) & 0xFF)) }
                }
                i += 4
            }
            return out
        }
    }
#endif
