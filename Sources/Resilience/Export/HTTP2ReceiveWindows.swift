#if GRPC
    import NIOCore
    package import NIOHTTP2

    /// The receive windows of one HTTP/2 connection whose frames are handled without NIO's stream
    /// multiplexer, which otherwise gives them back: what was read is returned in WINDOW_UPDATE
    /// frames once half a window's target is used, as the multiplexer does. Without them a peer
    /// stops sending after 64 KiB on the connection (a client after ~13,000 answers).
    ///
    /// Used by the exporter's `GRPCCallsHandler` and the test receiver's gRPC side.
    ///
    /// Thread-safety: a value owned by one connection's handler, on its event loop.
    package struct HTTP2ReceiveWindows: Sendable {
        /// The connection's window the peer may fill, in bytes.
        package let connectionTarget: Int
        /// Each stream's window, in bytes: the `SETTINGS_INITIAL_WINDOW_SIZE` this side sent.
        package let streamTarget: Int
        private var connectionUnreturned = 0

        /// The HTTP/2 default of every window until a WINDOW_UPDATE or a setting changes it.
        package static let protocolDefault = 65_535

        package init(connectionTarget: Int = protocolDefault, streamTarget: Int = protocolDefault) {
            self.connectionTarget = min(max(connectionTarget, 1), Int(Int32.max))
            self.streamTarget = min(max(streamTarget, 1), Int(Int32.max))
        }

        /// The increment that opens a new connection's window (65,535 bytes whatever the settings
        /// say) to its target, if the target is larger.
        package var initialConnectionIncrement: Int? {
            connectionTarget > Self.protocolDefault ? connectionTarget - Self.protocolDefault : nil
        }

        /// Counts what a DATA frame of stream `id` carried (data and padding), whose stream has
        /// `streamUnreturned` bytes not given back yet, and hands `send` the WINDOW_UPDATE frames
        /// due now. Returns whether it sent any (the caller flushes).
        package mutating func read(
            _ data: HTTP2Frame.FramePayload.Data, on id: HTTP2StreamID, streamUnreturned: inout Int, send: (HTTP2Frame) -> Void
        ) -> Bool {
            let length = data.data.readableBytes + (data.paddingBytes.map { $0 + 1 } ?? 0)
            let increments = read(length, stream: &streamUnreturned, streamEnded: data.endStream)
            if increments.connection > 0 {
                send(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: increments.connection)))
            }
            if increments.stream > 0 { send(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: increments.stream))) }
            return increments.connection > 0 || increments.stream > 0
        }

        /// Counts `length` flow-controlled bytes (a DATA frame's data and padding) read on a stream
        /// whose unreturned bytes are `stream`; returns the increments to send now, 0 for none: the
        /// connection's once half its target is unreturned, the stream's likewise unless the
        /// stream has ended (its window dies with it).
        package mutating func read(_ length: Int, stream: inout Int, streamEnded: Bool) -> (connection: Int, stream: Int) {
            guard length > 0 else { return (0, 0) }
            var increments = (connection: 0, stream: 0)
            connectionUnreturned += length
            if connectionUnreturned >= (connectionTarget + 1) / 2 {
                increments.connection = connectionUnreturned
                connectionUnreturned = 0
            }
            if !streamEnded {
                stream += length
                if stream >= (streamTarget + 1) / 2 {
                    increments.stream = stream
                    stream = 0
                }
            }
            return increments
        }
    }
#endif
