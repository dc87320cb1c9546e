import NIOCore
import NIOHTTP1
import NIOPosix
public import Resilience
import Synchronization

/// An OTLP/HTTP receiver for tests and demos: accepts `http/protobuf` on `/v1/traces`,
/// `/v1/logs` and `/v1/metrics` at 127.0.0.1, decodes what it receives, and counts spans, log
/// records and metric data points (metrics' always decoded, in arrival order), spans by id
/// and by `spillway.load.seq`. It can be told to misbehave (``Behavior``) to test failure paths.
///
/// Thread-safety: every method is safe from any thread.
///
/// ```swift
/// let receiver = try await OTLPReceiver.start()
/// var configuration = PipelineConfiguration()
/// configuration.exporter.endpoint = receiver.endpoint
/// ```
public final class OTLPReceiver: Sendable {
    /// What to keep of each request beyond the counts.
    public struct Retention: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// Decoded spans and log records (``spans``, ``logRecords``).
        public static let records = Retention(rawValue: 1)
        /// Raw request bodies, decompressed (``bodies``).
        public static let bodies = Retention(rawValue: 2)
    }

    /// One received request.
    public struct Request: Sendable {
        public var path: String
        public var headers: [(name: String, value: String)]
        /// The body as received, after gzip decompression.
        public var body: [UInt8]
    }

    struct State {
        var behavior: Behavior = .accept
        var requests = 0
        var connections = 0
        var acceptedRequests = 0
        var spanCount = 0
        var logCount = 0
        var metricPoints: [DecodedMetricPoint] = []
        var spans: [DecodedSpan] = []
        var logs: [DecodedLogRecord] = []
        var bodies: [Request] = []
        var spanIDs: [UInt64: Int] = [:]
        var sequenceCounts: [[UInt8]] = [[], [], []]  // by signal: traces, logs, metrics
        var badRequests = 0
        var lastPath = ""
        var statusCounts: [Int: Int] = [:]
        var requestTimes: [ContinuousClock.Instant] = []
        var random: UInt64 = 0
        var randomSeed: UInt64?
        var failedFirst = 0
        var (delayedNow, mostDelayedAtOnce) = (0, 0)
    }

    let state = Mutex(State())
    let retention: Retention
    let countIDs: Bool
    private let channel: any Channel
    /// The event loops of `ownEventLoops`, if it was given.
    private let ownGroup: MultiThreadedEventLoopGroup?
    /// The port it listens on, at 127.0.0.1.
    public let port: Int
    /// Whether it speaks TLS (``start(port:retention:countIDs:tls:)`` with a ``TLS``).
    public let usesTLS: Bool
    /// `http://127.0.0.1:<port>` (`https://` with TLS), for ``OTLPExporterConfiguration/endpoint``
    /// (with the same ``OTLPExporterConfiguration/protocol`` as the receiver's).
    public var endpoint: String { "\(usesTLS ? "https" : "http")://127.0.0.1:\(port)" }

    private init(channel: any Channel, retention: Retention, countIDs: Bool, usesTLS: Bool, ownGroup: MultiThreadedEventLoopGroup?) {
        self.channel = channel
        self.ownGroup = ownGroup
        self.port = channel.localAddress?.port ?? 0
        self.usesTLS = usesTLS
        self.retention = retention
        self.countIDs = countIDs
    }

    /// Starts listening on 127.0.0.1.
    /// - Parameters:
    ///   - port: 0 picks a free port.
    ///   - retention: What to keep besides counts. - Default value: decoded records.
    ///   - countIDs: Count spans by span id (costs memory on long runs). - Default value: `true`.
    ///   - tls: Speak TLS with this certificate (and require client certificates if it names a
    ///     client CA). - Default value: `nil`, plaintext. Needs the package trait `TLS`.
    ///   - protocol: OTLP/HTTP, or OTLP/gRPC (HTTP/2; with TLS, ALPN `h2`; the trait `GRPC`).
    ///     - Default value: ``OTLPProtocol/httpProtobuf``.
    ///   - maximumConcurrentStreams: gRPC: the streams a connection may have open at once
    ///     (`SETTINGS_MAX_CONCURRENT_STREAMS`). - Default value: 1000.
    ///   - receiveWindow: gRPC: the receive window of each stream and of the connection, bytes
    ///     (65,535 is HTTP/2's default). - Default value: 1 MiB per stream, 16 MiB per connection.
    ///   - ownEventLoops: Run on a group of this many event-loop threads of its own, shut down by
    ///     ``stop()``. - Default value: `nil`, NIO's singleton group, which the exporters use too:
    ///     in one process the receiver's work then runs on their event loops, as no real
    ///     collector's does (a benchmark gives it loops of its own).
    /// - Throws: a TLS file that cannot be read; the port is taken; gRPC or TLS without its trait.
    public static func start(
        port: Int = 0, retention: Retention = .records, countIDs: Bool = true, tls: TLS? = nil, protocol: OTLPProtocol = .httpProtobuf,
        maximumConcurrentStreams: Int = 1000, receiveWindow: Int? = nil, ownEventLoops: Int? = nil
    ) async throws -> OTLPReceiver {
        let box = ReceiverBox()
        let grpc = `protocol` == .grpc
        let serverTLS = try tls.map { try ServerTLS($0, applicationProtocols: grpc ? ["h2"] : []) }
        #if !GRPC
            if grpc { throw GRPCUnavailableError() }
        #endif
        let own = ownEventLoops.map { MultiThreadedEventLoopGroup(numberOfThreads: max(1, $0)) }
        let bootstrap = ServerBootstrap(group: own ?? MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    box.receiver.withLock { $0 }?.noteConnection()
                    try serverTLS?.addHandler(to: channel)
                    if grpc {
                        try addGRPCServerHandlers(
                            to: channel, box: box, maximumConcurrentStreams: maximumConcurrentStreams, receiveWindow: receiveWindow)
                    } else {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(ReceiverHandler(box: box))
                    }
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: "127.0.0.1", port: port).get()
        } catch {
            try? await own?.shutdownGracefully()
            throw error
        }
        let receiver = OTLPReceiver(channel: channel, retention: retention, countIDs: countIDs, usesTLS: tls != nil, ownGroup: own)
        box.receiver.withLock { $0 = receiver }
        return receiver
    }

    /// Stops listening. Open connections are closed by their peers or when the process ends (with
    /// `ownEventLoops`, now: its event loops shut down).
    public func stop() async throws {
        try await channel.close()
        try await ownGroup?.shutdownGracefully()
    }

    /// How the receiver answers from now on.
    public var behavior: Behavior {
        get { state.withLock { $0.behavior } }
        set {
            state.withLock {
                $0.behavior = newValue
                $0.failedFirst = 0
            }
        }
    }

    /// Requests received, whatever the answer.
    public var requestCount: Int { state.withLock { $0.requests } }
    /// Connections accepted so far.
    public var connectionCount: Int { state.withLock { $0.connections } }
    /// Requests accepted and counted.
    public var acceptedRequestCount: Int { state.withLock { $0.acceptedRequests } }
    /// Spans accepted (duplicates included).
    public var spanCount: Int { state.withLock { $0.spanCount } }
    /// Log records accepted (duplicates included).
    public var logCount: Int { state.withLock { $0.logCount } }
    /// Metric data points accepted (duplicates included).
    public var metricPointCount: Int { state.withLock { $0.metricPoints.count } }
    /// Every metric data point accepted, decoded, in arrival order.
    package var metricPoints: [DecodedMetricPoint] { state.withLock { $0.metricPoints } }
    /// Requests whose body did not decode (answered 400).
    public var badRequestCount: Int { state.withLock { $0.badRequests } }
    /// Decoded spans, in arrival order (with ``Retention/records``).
    public var spans: [DecodedSpan] { state.withLock { $0.spans } }
    /// Decoded log records, in arrival order (with ``Retention/records``).
    public var logRecords: [DecodedLogRecord] { state.withLock { $0.logs } }
    /// Raw requests (with ``Retention/bodies``).
    public var bodies: [Request] { state.withLock { $0.bodies } }
    /// Span ids seen more than once (with `countIDs`).
    public var duplicateSpanIDs: Int { state.withLock { $0.spanIDs.values.filter { $0 > 1 }.count } }
    /// The most requests held at once by ``Behavior/delay(_:)``: how many requests the client
    /// had under way, seen from the collector's side.
    public var mostDelayedAtOnce: Int { state.withLock { $0.mostDelayedAtOnce } }
    /// Distinct span ids seen (with `countIDs`).
    public var uniqueSpanIDs: Int { state.withLock { $0.spanIDs.count } }
    /// How often each span id arrived (with `countIDs`): for counting by id across receivers.
    public var spanIDCounts: [UInt64: Int] { state.withLock { $0.spanIDs } }

    /// How often each `spillway.load.seq` value of one signal arrived, indexed by the value: for
    /// counting by id across receivers.
    public func sequenceCounts(signal: TelemetrySignal = .traces) -> [Int] {
        state.withLock { $0.sequenceCounts[Int(signal.rawValue) - 1].map { Int($0) } }
    }

    /// Loss and duplication of the `spillway.load.seq` values `0..<expected` of one signal.
    public func sequenceReport(expected: Int, signal: TelemetrySignal = .traces) -> SequenceReport {
        state.withLock { state in
            var report = SequenceReport(expected: expected)
            let counts = state.sequenceCounts[Int(signal.rawValue) - 1]
            for seq in 0..<expected {
                let n = seq < counts.count ? Int(counts[seq]) : 0
                if n == 0 {
                    report.missing += 1
                } else {
                    report.received += 1
                    report.duplicates += n - 1
                }
            }
            return report
        }
    }

    /// What arrived of a numbered load.
    public struct SequenceReport: Sendable, Hashable, CustomStringConvertible {
        public var expected: Int
        public var received = 0
        public var missing = 0
        public var duplicates = 0
        public var description: String { "expected \(expected), received \(received), missing \(missing), duplicates \(duplicates)" }
    }

    /// Clears every count and everything retained.
    public func reset() {
        state.withLock { state in
            let behavior = state.behavior
            state = State()
            state.behavior = behavior
        }
    }

    // MARK: Handling (called by ReceiverHandler on the event loop)

    enum Answer {
        case ok(body: [UInt8])
        case status(Int, retryAfter: String?, message: String)
        case reset
        case garbage
        case closeMidResponse
        case delayed(Duration)
    }

    func behaviorForNextRequest(path: String) -> Behavior {
        state.withLock { state in
            state.requests += 1
            state.lastPath = path
            state.requestTimes.append(.now)
            if case .failFirst(let count, let status, let retryAfter) = state.behavior {
                guard state.failedFirst < count else { return .accept }
                state.failedFirst += 1
                return .fail(status: status, retryAfter: retryAfter)
            }
            guard case .randomFaults(let rate, let seed) = state.behavior else { return state.behavior }
            if state.randomSeed != seed {
                state.randomSeed = seed
                state.random = seed
            }
            // SplitMix64: a deterministic sequence per seed.
            state.random &+= 0x9E37_79B9_7F4A_7C15
            var z = state.random
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            let u = Double(z >> 11) / Double(1 << 53)
            if u < rate / 2 { return .fail(status: 503) }
            if u < rate { return .resetConnection }
            return .accept
        }
    }

    /// When each request arrived (its last byte), in order.
    public var requestTimes: [ContinuousClock.Instant] { state.withLock { $0.requestTimes } }

    /// The path of the last request, and how many answers of each status were sent.
    public var diagnostics: (lastPath: String, statuses: [Int: Int]) { state.withLock { ($0.lastPath, $0.statusCounts) } }

    func noteConnection() { state.withLock { $0.connections += 1 } }

    func noteStatus(_ code: Int) { state.withLock { $0.statusCounts[code, default: 0] += 1 } }

    func accept(path: String, headers: HTTPHeaders, body rawBody: [UInt8], rejected: Int, message: String) -> Answer {
        let signal: TelemetrySignal
        switch path.split(separator: "?").first ?? "" {
        case "/v1/traces": signal = .traces
        case "/v1/logs": signal = .logs
        case "/v1/metrics": signal = .metrics
        default: return .status(404, retryAfter: nil, message: "no such path: \(path)")
        }
        var body = rawBody
        if headers.first(name: "Content-Encoding")?.lowercased() == "gzip" {
            guard let inflated = gzipDecompress(rawBody, maximumSize: 256 << 20) else {
                state.withLock { $0.badRequests += 1 }
                return .status(400, retryAfter: nil, message: "body is not valid gzip")
            }
            body = inflated
        }
        var ids: [UInt64] = []
        var sequences: [Int64] = []
        var count = 0
        var spans: [DecodedSpan] = []
        var logs: [DecodedLogRecord] = []
        var points: [DecodedMetricPoint] = []
        do {
            try OTLPDecoding.scan(body, signal: signal) { id, sequence in
                count += 1
                if countIDs && signal == .traces { ids.append(id) }
                if let sequence { sequences.append(sequence) }
            }
            if signal == .metrics { points = try OTLPDecoding.metricPoints(from: body) }
            if retention.contains(.records) && signal != .metrics {
                if signal == .traces { spans = try OTLPDecoding.spans(from: body) } else { logs = try OTLPDecoding.logRecords(from: body) }
            }
        } catch {
            state.withLock { $0.badRequests += 1 }
            return .status(400, retryAfter: nil, message: "\(error)")
        }
        state.withLock { state in
            state.acceptedRequests += 1
            switch signal {
            case .traces: state.spanCount += count
            case .logs: state.logCount += count
            case .metrics: state.metricPoints += points
            }
            for id in ids { state.spanIDs[id, default: 0] += 1 }
            let s = Int(signal.rawValue) - 1
            for seq in sequences where seq >= 0 && seq < 1 << 30 {
                let i = Int(seq)
                if i >= state.sequenceCounts[s].count {
                    state.sequenceCounts[s].append(
                        contentsOf: repeatElement(0, count: max(i + 1, state.sequenceCounts[s].count * 2) - state.sequenceCounts[s].count))
                }
                if state.sequenceCounts[s][i] < 255 { state.sequenceCounts[s][i] += 1 }
            }
            state.spans += spans
            state.logs += logs
            if retention.contains(.bodies) {
                state.bodies.append(Request(path: path, headers: headers.map { ($0.name, $0.value) }, body: body))
            }
        }
        // Export…ServiceResponse { partial_success = 1 { rejected = 1; error_message = 2 } }
        // (A message without rejections is a warning, as the specification allows.)
        guard rejected > 0 || !message.isEmpty else { return .ok(body: []) }
        var partial: [UInt8] = rejected > 0 ? [0x08] + varint(UInt64(rejected)) : []
        let text = Array(message.utf8)
        partial += [0x12] + varint(UInt64(text.count)) + text
        return .ok(body: [0x0A] + varint(UInt64(partial.count)) + partial)
    }
}
