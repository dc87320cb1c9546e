import NIOCore
import NIOHTTP1
import NIOPosix
import Resilience
import Synchronization

func varint(_ value: UInt64) -> [UInt8] {
    var v = value
    var out: [UInt8] = []
    while v >= 0x80 {
        out.append(UInt8(truncatingIfNeeded: v) | 0x80)
        v >>= 7
    }
    out.append(UInt8(v))
    return out
}

final class ReceiverBox: Sendable {
    let receiver = Mutex<OTLPReceiver?>(nil)
}

final class ReceiverHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let box: ReceiverBox
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(box: ReceiverBox) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.removeAll(keepingCapacity: true)
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head, let receiver = box.receiver.withLock({ $0 }) else { return }
            self.head = nil
            let behavior = receiver.behaviorForNextRequest(path: head.uri)
            let answer: OTLPReceiver.Answer
            switch behavior {
            case .accept, .goAway: answer = receiver.accept(path: head.uri, headers: head.headers, body: body, rejected: 0, message: "")
            case .partialSuccess(let rejected, let message):
                answer = receiver.accept(path: head.uri, headers: head.headers, body: body, rejected: rejected, message: message)
            case .fail(let status, let retryAfter):
                answer = .status(status, retryAfter: retryAfter, message: "receiver told to fail with \(status)")
            case .failEchoingHeader(let status, let header):
                answer = .status(status, retryAfter: nil, message: "invalid \(header): \(head.headers.first(name: header) ?? "(none)")")
            case .resetConnection: answer = .reset
            case .delay(let duration): answer = .delayed(duration)
            case .garbage: answer = .garbage
            case .closeMidResponse: answer = .closeMidResponse
            case .randomFaults, .failFirst: answer = .status(500, retryAfter: nil, message: "unreachable: resolved per request")
            case .failGRPC(let code, _): answer = .status(500, retryAfter: nil, message: "gRPC status \(code) over HTTP")
            }
            respond(answer, context: context, head: head, receiver: receiver)
        }
    }

    private func respond(_ answer: OTLPReceiver.Answer, context: ChannelHandlerContext, head: HTTPRequestHead, receiver: OTLPReceiver) {
        var headers = HTTPHeaders()
        switch answer {
        case .ok(let bytes):
            headers.add(name: "Content-Type", value: "application/x-protobuf")
            send(context, status: .ok, headers: headers, body: bytes, keepAlive: head.isKeepAlive)
        case .status(let code, let retryAfter, let message):
            if let retryAfter { headers.add(name: "Retry-After", value: retryAfter) }
            headers.add(name: "Content-Type", value: "application/x-protobuf")
            // google.rpc.Status { int32 code = 1; string message = 2; }
            let text = Array(message.utf8)
            send(
                context, status: HTTPResponseStatus(statusCode: code), headers: headers, body: [0x12] + varint(UInt64(text.count)) + text,
                keepAlive: head.isKeepAlive)
        case .reset:
            // SO_LINGER 0: close() sends RST instead of FIN.
            if let provider = context.channel as? any SocketOptionProvider {
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in bound.value.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
        case .garbage:
            headers.add(name: "Content-Type", value: "application/x-protobuf")
            send(context, status: .ok, headers: headers, body: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x01, 0x02], keepAlive: head.isKeepAlive)
        case .closeMidResponse:
            headers.add(name: "Content-Type", value: "application/x-protobuf")
            headers.add(name: "Content-Length", value: "1000")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: [0x0A, 0x05, 0x08])))), promise: nil)
            context.close(promise: nil)
        case .delayed(let duration):
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let saved = body
            receiver.state.withLock { state in
                (state.delayedNow, state.mostDelayedAtOnce) = (state.delayedNow + 1, max(state.mostDelayedAtOnce, state.delayedNow + 1))
            }
            context.eventLoop.scheduleTask(
                in: .nanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
            ) {
                let (handler, context) = bound.value
                receiver.state.withLock { $0.delayedNow -= 1 }
                let answer = receiver.accept(path: head.uri, headers: head.headers, body: saved, rejected: 0, message: "")
                handler.respond(answer, context: context, head: head, receiver: receiver)
            }
        }
    }

    private func send(_ context: ChannelHandlerContext, status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8], keepAlive: Bool) {
        box.receiver.withLock { $0 }?.noteStatus(Int(status.code))
        var headers = headers
        headers.add(name: "Content-Length", value: String(body.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if !keepAlive { context.close(promise: nil) }
    }
}
