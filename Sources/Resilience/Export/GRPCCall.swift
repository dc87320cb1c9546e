#if GRPC
    import NIOCore
    import NIOHPACK
    import NIOHTTP2
    import Synchronization

    /// The unary gRPC calls of one HTTP/2 connection, each on its own stream, written as frames
    /// on the connection's channel: ``start(request:message:timeout:promise:)`` opens a stream
    /// (the next odd id) with the request headers and the one length-prefixed message; the
    /// response headers, message and trailers complete the call's promise exactly once (answer,
    /// timeout, reset, GOAWAY, error or close, whichever comes first).
    ///
    /// Not a stream channel per call: NIO's multiplexer makes a child channel, pipeline and
    /// handler for every stream and runs its activation and close; measured, that was about a
    /// fifth of the exporter's event-loop time, which did twice HTTP/1.1's work per request.
    /// NIOHTTP2Handler below still does the protocol: HPACK, outbound flow control (DATA frames
    /// wait for window), the peer's concurrent-stream limit (streams over it wait in its buffer),
    /// frame sizes. The receive windows the multiplexer used to give back, this handler gives back
    /// (``HTTP2ReceiveWindows``).
    ///
    /// Thread-safety: used on its channel's event loop only.
    final class GRPCCallsHandler: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame
        typealias OutboundOut = HTTP2Frame

        /// What came back: the response headers, the trailers (the same block for a
        /// trailers-only answer) and the data frames' bytes.
        struct Response: Sendable {
            var headers: HPACKHeaders?
            var trailers: HPACKHeaders?
            var body: [UInt8] = []
        }

        private struct Call {
            var promise: EventLoopPromise<Response>
            var response = Response()
            var timeout: Scheduled<Void>?
            /// Bytes of the answer whose stream window was not given back yet.
            var streamUnreturned = 0
        }

        private static let maximumResponseBody = 4 << 20
        private var calls: [HTTP2StreamID: Call] = [:]
        /// Client streams are odd, in increasing order of first use.
        private var nextStreamID: Int32 = 1
        /// Set by a GOAWAY or the close: no stream starts any more.
        private var closed = false
        private var context: ChannelHandlerContext?
        private let state: GRPCConnectionState
        /// The highest stream id this connection uses (HTTP/2 allows 2³¹ − 1); then a new connection takes over.
        private let lastStreamID: Int32

        init(state: GRPCConnectionState, lastStreamID: Int32 = .max) {
            self.state = state
            self.lastStreamID = lastStreamID
        }

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }

        func handlerRemoved(context: ChannelHandlerContext) {
            self.context = nil
            failAll(message: "the connection's handler was removed")
        }

        /// Starts a call; completes `promise` with its answer or a failure. On the event loop.
        func start(request: HPACKHeaders, message: ByteBuffer, timeout: TimeAmount, promise: EventLoopPromise<Response>) {
            if nextStreamID > lastStreamID && !closed {
                // Out of stream ids (a billion calls): the connection ends with its last call, as
                // after a GOAWAY, and the exporter opens another.
                closed = true
                state.goneAway.store(true, ordering: .relaxed)
                if calls.isEmpty { context?.close(promise: nil) }
            }
            guard let context, !closed, context.channel.isActive else {
                var failure = OTLPExportError(code: .connectionClosed, message: "the connection takes no new stream")
                failure.beforeAnswer = true
                failure.unprocessed = true
                promise.fail(failure)
                return
            }
            let id = HTTP2StreamID(nextStreamID)
            nextStreamID += 2
            var call = Call(promise: promise)
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            call.timeout = context.eventLoop.scheduleTask(in: timeout) {
                let handler = loopBound.value
                guard handler.calls[id] != nil else { return }
                handler.finish(id, .failure(OTLPExportError(code: .timeout, message: "no answer within \(timeout)")))
                handler.reset(id)
            }
            calls[id] = call
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenFailure { error in
                var failure = OTLPExportError(code: .connectionClosed, message: "the call could not be sent: \(error)")
                failure.beforeAnswer = true
                failure.unprocessed = true
                loopBound.value.finish(id, .failure(failure))
            }
            context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: request)))), promise: nil)
            context.writeAndFlush(
                wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(message), endStream: true)))),
                promise: written)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            switch frame.payload {
            case .headers(let headers):
                guard var call = calls[frame.streamID] else { return }
                if call.response.headers == nil {
                    call.response.headers = headers.headers
                    if headers.endStream { call.response.trailers = headers.headers }
                } else {
                    call.response.trailers = headers.headers
                }
                calls[frame.streamID] = call
                if call.response.trailers != nil { finish(frame.streamID, .success(call.response)) }
            case .data(let data):
                // Taken out while it grows, so that its body is not copied on write.
                guard var call = calls.removeValue(forKey: frame.streamID) else {
                    var unknown = 0
                    returnWindow(data, on: frame.streamID, streamUnreturned: &unknown, context: context)
                    return
                }
                returnWindow(data, on: frame.streamID, streamUnreturned: &call.streamUnreturned, context: context)
                if case .byteBuffer(var buffer) = data.data {
                    guard call.response.body.count + buffer.readableBytes <= Self.maximumResponseBody else {
                        calls[frame.streamID] = call
                        finish(
                            frame.streamID,
                            .failure(OTLPExportError(code: .invalidResponse, message: "response over \(Self.maximumResponseBody) bytes")))
                        reset(frame.streamID)
                        return
                    }
                    call.response.body += buffer.readBytes(length: buffer.readableBytes) ?? []
                }
                calls[frame.streamID] = call
                if data.endStream { finish(frame.streamID, .success(call.response)) }
            case .rstStream(let code):
                guard let call = calls[frame.streamID] else { return }
                var failure = OTLPExportError(code: .connectionClosed, message: "the collector reset the stream (\(code))")
                failure.beforeAnswer = call.response.headers == nil
                finish(frame.streamID, .failure(failure))
            case .goAway(let lastStreamID, let code, _):
                // Streams above the last one the collector took were not processed: safe to send again.
                closed = true
                state.goneAway.store(true, ordering: .relaxed)
                for id in calls.keys where id > lastStreamID {
                    var failure = OTLPExportError(
                        code: .connectionClosed, message: "the collector is closing the connection (GOAWAY \(code))")
                    failure.beforeAnswer = true
                    failure.unprocessed = true
                    finish(id, .failure(failure))
                }
            default:
                break
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            // After the stream's last frame: a call still open here lost its answer.
            if let closed = event as? StreamClosedEvent, let call = calls[closed.streamID] {
                var failure = OTLPExportError(
                    code: .connectionClosed,
                    message: "the stream closed before the answer was complete" + (closed.reason.map { " (\($0))" } ?? ""))
                failure.beforeAnswer = call.response.headers == nil
                finish(closed.streamID, .failure(failure))
            }
            context.fireUserInboundEventTriggered(event)
        }

        func channelInactive(context: ChannelHandlerContext) {
            closed = true
            failAll(message: "the connection closed before the answer was complete")
            context.fireChannelInactive()
        }

        private func failAll(message: String) {
            for (id, call) in calls {
                var failure = OTLPExportError(code: .connectionClosed, message: message)
                failure.beforeAnswer = call.response.headers == nil
                finish(id, .failure(failure))
            }
        }

        private func finish(_ id: HTTP2StreamID, _ result: Result<Response, OTLPExportError>) {
            guard let call = calls.removeValue(forKey: id) else { return }
            call.timeout?.cancel()
            call.promise.completeWith(result.mapError { $0 as any Error })
            // After a GOAWAY the connection ends with its last call (the exporter no longer uses it).
            if closed, calls.isEmpty, let context, context.channel.isActive { context.close(promise: nil) }
        }

        private var windows = HTTP2ReceiveWindows()

        /// Gives the receive windows back for what was read: every answer's message counts against
        /// the connection's window, and without WINDOW_UPDATEs the collector stops answering
        /// after ~13,000 calls. A stream's own window is topped up only for a long answer.
        private func returnWindow(
            _ data: HTTP2Frame.FramePayload.Data, on id: HTTP2StreamID, streamUnreturned: inout Int, context: ChannelHandlerContext
        ) {
            if windows.read(data, on: id, streamUnreturned: &streamUnreturned, send: { context.write(wrapOutboundOut($0), promise: nil) }) {
                context.flush()
            }
        }

        /// Abandons the call whose answer `promise` awaits (its export was cancelled): it fails, its stream is reset.
        func cancel(_ promise: EventLoopPromise<Response>) {
            guard let id = calls.first(where: { $0.value.promise.futureResult === promise.futureResult })?.key else { return }
            finish(id, .failure(OTLPExportError(code: .connectionClosed, message: "the export was cancelled")))
            reset(id)
        }

        /// Abandons a stream whose answer is no longer wanted.
        private func reset(_ id: HTTP2StreamID) {
            context?.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.cancel))), promise: nil)
        }
    }

    /// The gRPC wire details of OTLP: paths, message framing, status details.
    enum GRPCWire {
        static func path(_ signal: TelemetrySignal) -> String {
            switch signal {
            case .traces: "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            case .logs: "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
            case .metrics: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
            }
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
