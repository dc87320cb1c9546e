#if TLS
    #if canImport(Glibc)
        import Glibc
    #elseif canImport(Darwin)
        import Darwin
    #endif
    import NIOCore
    import NIOPosix
    import NIOSSL
    import NIOTLS

    /// The TLS side of the OTLP/HTTP exporter for one signal: a client context built from the
    /// configured files (or the system trust store), the handler each new connection gets, and
    /// the words for a failed handshake.
    ///
    /// The files are read once, when the exporter is built; a reconfigure builds a new exporter
    /// and so reads them again. Thread-safety: immutable, safe from any thread.
    struct TLSClient: Sendable {
        let settings: ExporterTLSConfiguration
        private let context: NIOSSLContext

        /// - Parameters:
        ///   - common: ``OTLPExporterConfiguration/tls``. - own: the signal's own settings, which win.
        /// - Throws: ``ConfigurationError`` naming the setting (`exporter.tls.certificateFile`, or
        ///   `exporter.traces.tls.…` when the signal's own value is wrong) and the file when a file
        ///   is missing, unreadable or not PEM.
        init(
            common: ExporterTLSConfiguration, own: ExporterTLSConfiguration, signal: TelemetrySignal, applicationProtocols: [String] = []
        ) throws(ConfigurationError) {
            let settings = common.overridden(by: own)
            self.settings = settings
            func prefix(_ ownValue: String?) -> String { ownValue == nil ? "exporter.tls" : "exporter.\(signal).tls" }
            let keyPrefixes = [
                "certificateFile": prefix(own.certificateFile), "clientCertificateFile": prefix(own.clientCertificateFile),
                "clientKeyFile": prefix(own.clientKeyFile)
            ]
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv12
            configuration.applicationProtocols = applicationProtocols
            func load<T>(_ key: String, _ path: String, _ what: String, _ body: () throws -> T) throws(ConfigurationError) -> T {
                guard access(path, R_OK) == 0 else {
                    let reason = errno == ENOENT ? "no such file" : "not readable: \(String(cString: strerror(errno)))"
                    throw ConfigurationError(
                        key: "\(keyPrefixes[key]!).\(key)", value: path, allowed: "a readable PEM file of \(what) (\(reason))")
                }
                do {
                    return try body()
                } catch {
                    throw ConfigurationError(
                        key: "\(keyPrefixes[key]!).\(key)", value: path, allowed: "a readable PEM file of \(what) (\(Self.describe(error)))"
                    )
                }
            }
            if let path = settings.certificateFile {
                let roots = try load("certificateFile", path, "CA certificates") { try NIOSSLCertificate.fromPEMFile(path) }
                guard !roots.isEmpty else {
                    throw ConfigurationError(
                        key: "\(keyPrefixes["certificateFile"]!).certificateFile", value: path,
                        allowed: "a PEM file of CA certificates (it holds none)")
                }
                configuration.trustRoots = .certificates(roots)
            }
            if let chainPath = settings.clientCertificateFile, let keyPath = settings.clientKeyFile {
                let chain = try load("clientCertificateFile", chainPath, "certificates") { try NIOSSLCertificate.fromPEMFile(chainPath) }
                guard !chain.isEmpty else {
                    throw ConfigurationError(
                        key: "\(keyPrefixes["clientCertificateFile"]!).clientCertificateFile", value: chainPath,
                        allowed: "a PEM file of certificates (it holds none)")
                }
                configuration.certificateChain = chain.map { .certificate($0) }
                configuration.privateKey = .privateKey(
                    try load("clientKeyFile", keyPath, "a private key") { try NIOSSLPrivateKey(file: keyPath, format: .pem) })
            }
            do {
                self.context = try NIOSSLContext(configuration: configuration)
            } catch {
                throw ConfigurationError(
                    key: "\(keyPrefixes["clientKeyFile"]!).clientKeyFile", value: settings.clientKeyFile ?? "nil",
                    allowed: "a key that matches the client certificate, and a usable TLS set-up (\(Self.describe(error)))")
            }
        }

        /// Adds the TLS handler and a ``TLSHandshakeWatcher`` in front of a new connection's HTTP
        /// handlers; the watcher's promise completes when the handshake has (or fails with its error).
        func addHandlers(to channel: any Channel, host: String) throws {
            // An IP address is checked against the certificate's IP entries; a name is sent as SNI.
            let handler = try NIOSSLClientHandler(context: context, serverHostname: Self.isIPAddress(host) ? nil : host)
            try channel.pipeline.syncOperations.addHandler(handler)
            try Self.addWatcher(to: channel)
        }

        /// Adds a ``TLSHandshakeWatcher`` behind the TLS handler; its promise is failed if it cannot be added.
        static func addWatcher(to channel: any Channel) throws {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            do {
                try channel.pipeline.syncOperations.addHandler(TLSHandshakeWatcher(promise: promise))
            } catch {
                promise.fail(error)
                throw error
            }
        }

        /// Waits for the handshake of a connection made with ``addHandlers(to:host:)``, at most
        /// `timeout` (a peer that accepts and never answers fails it).
        /// - Throws: ``OTLPExportError/Code/tlsFailed`` with the diagnosis (``explain(_:host:port:group:timeout:)``),
        ///   or ``OTLPExportError/Code/connectionClosed`` for a connection lost mid-handshake. The channel is closed then.
        func awaitHandshake(on channel: any Channel, endpoint: HTTPEndpoint, group: any EventLoopGroup, timeout: Duration) async throws {
            let handshake: EventLoopFuture<Void>
            do {
                handshake = try await channel.pipeline.handler(type: TLSHandshakeWatcher.self).get().promise.futureResult
            } catch {
                channel.close(promise: nil)
                throw OTLPExportError(code: .connectionClosed, message: "\(endpoint.host):\(endpoint.port): closed before TLS began")
            }
            let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { channel.close(promise: nil) }
            defer { timer.cancel() }
            do {
                try await handshake.get()
            } catch {
                channel.close(promise: nil)
                if Self.failure(error, endpoint: "") == nil {
                    throw OTLPExportError(code: .connectionClosed, message: "\(endpoint.host):\(endpoint.port): TLS handshake: \(error)")
                }
                throw await explain(
                    error, host: endpoint.host, port: endpoint.port, group: group, timeout: .nanoseconds(timeout.nanoseconds))
            }
        }

        /// What a failed handshake means, once the verification failure is diagnosed: the
        /// connection to `host:port` with verification off shows the certificate the collector
        /// presents, and the words name its problem (expired, for another host, untrusted).
        func explain(_ error: any Error, host: String, port: Int, group: any EventLoopGroup, timeout: TimeAmount) async -> OTLPExportError {
            var failure = TLSClient.failure(error, endpoint: "\(host):\(port)") ?? OTLPExportError(code: .tlsFailed, message: "\(error)")
            guard "\(error)".contains("CERTIFICATE_VERIFY_FAILED") || error is NIOSSLExtraError else { return failure }
            let trust = settings.certificateFile.map { "the CA file \($0)" } ?? "the system trust store"
            guard let certificate = await Self.presentedCertificate(host: host, port: port, group: group, timeout: timeout) else {
                failure.message =
                    "the certificate of \(host):\(port) was not accepted (not signed by a CA in \(trust), expired, "
                    + "or not for this host): \(error)"
                return failure
            }
            failure.message = Self.diagnose(certificate, host: host, port: port, trust: trust)
            return failure
        }

        static func diagnose(_ certificate: NIOSSLCertificate, host: String, port: Int, trust: String) -> String {
            let now = time(nil)
            let names = certificate._subjectAlternativeNames().map { name -> String in
                switch name.nameType {
                case .dnsName: return String(decoding: name.contents, as: UTF8.self)
                case .ipAddress: return Self.formatAddress(Array(name.contents))
                default: return "<\(name.nameType)>"
                }
            }
            let subject = "the certificate of \(host):\(port) (\(certificate))"
            if certificate.notValidAfter < now {
                return "\(subject) expired on \(Self.formatDate(certificate.notValidAfter))"
            }
            if certificate.notValidBefore > now {
                return "\(subject) is not valid before \(Self.formatDate(certificate.notValidBefore))"
            }
            if !names.contains(where: { Self.matches($0, host: host) }) {
                return "\(subject) is for \(names.isEmpty ? "no host name" : names.joined(separator: ", ")), not \(host)"
            }
            return "\(subject) is not signed by a CA in \(trust)"
        }

        /// The collector's leaf certificate, read over a connection that verifies nothing and
        /// sends nothing; `nil` when that fails too.
        static func presentedCertificate(host: String, port: Int, group: any EventLoopGroup, timeout: TimeAmount) async
            -> NIOSSLCertificate?
        {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            guard let context = try? NIOSSLContext(configuration: configuration) else { return nil }
            let name = isIPAddress(host) ? nil : host
            let bootstrap = ClientBootstrap(group: group).connectTimeout(timeout).channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: name))
                    try Self.addWatcher(to: channel)
                }
            }
            guard let channel = try? await bootstrap.connect(host: host, port: port).get() else { return nil }
            defer { channel.close(promise: nil) }
            guard let watcher = try? await channel.pipeline.handler(type: TLSHandshakeWatcher.self).get() else { return nil }
            let timer = channel.eventLoop.scheduleTask(in: timeout) { watcher.promise.fail(ChannelError.connectTimeout(timeout)) }
            defer { timer.cancel() }
            guard (try? await watcher.promise.futureResult.get()) != nil else { return nil }
            return try? await channel.nioSSL_peerCertificate().get()
        }

        /// A TLS error as an export failure (``OTLPExportError/Code/tlsFailed``, a misconfiguration),
        /// or `nil` if `error` is not one: a connection closed mid-handshake stays a transport failure.
        static func failure(_ error: any Error, endpoint: String) -> OTLPExportError? {
            // BoringSSL's reason (`…:OPENSSL_internal:TLSV1_ALERT_CERTIFICATE_REQUIRED at file:line`), else the whole error.
            let full = "\(error)"
            let text = full.split(separator: "OPENSSL_internal:").dropFirst().first.map { String($0.prefix { $0 != " " }) } ?? full
            switch error {
            case NIOSSLError.handshakeFailed, is NIOSSLExtraError:
                break
            case NIOSSLError.uncleanShutdown:
                return nil
            default:
                guard error is NIOSSLError || error is BoringSSLError else { return nil }
            }
            let message: String
            if text.contains("WRONG_VERSION_NUMBER") || text.contains("HTTP_REQUEST") || text.contains("PACKET_LENGTH_TOO_LONG") {
                message = "\(endpoint) does not speak TLS (its answer was not a TLS handshake): use an http:// endpoint or the TLS port"
            } else if text.contains("CERTIFICATE_REQUIRED") || text.contains("HANDSHAKE_FAILURE") && text.contains("ALERT") {
                message =
                    "\(endpoint) refused the handshake; it may require a client certificate (mutual TLS: "
                    + "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY): \(text)"
            } else if text.contains("ALERT_BAD_CERTIFICATE") || text.contains("ALERT_UNKNOWN_CA")
                || text.contains("ALERT_CERTIFICATE_EXPIRED") || text.contains("ALERT_CERTIFICATE_UNKNOWN")
            {
                message = "\(endpoint) refused the client certificate: \(text)"
            } else {
                message = "TLS with \(endpoint) failed: \(text)"
            }
            return OTLPExportError(code: .tlsFailed, message: message)
        }

        static func describe(_ error: any Error) -> String {
            switch error {
            case NIOSSLError.noSuchFilesystemObject: return "no such file"
            case NIOSSLError.failedToLoadCertificate: return "not a PEM certificate"
            case NIOSSLError.failedToLoadPrivateKey: return "not a PEM private key"
            default: return "\(error)"
            }
        }

        static func isIPAddress(_ host: String) -> Bool {
            host.contains(":") || (host.split(separator: ".").count == 4 && host.allSatisfy { $0 == "." || $0.isASCII && $0.isNumber })
        }

        static func matches(_ name: String, host: String) -> Bool {
            let name = name.lowercased()
            let host = host.lowercased()
            if name == host { return true }
            // A wildcard covers one label: *.example.com matches a.example.com only.
            guard name.hasPrefix("*."), let dot = host.firstIndex(of: ".") else { return false }
            return host[dot...] == name.dropFirst()
        }

        static func formatAddress(_ bytes: [UInt8]) -> String {
            if bytes.count == 4 { return bytes.map { String($0) }.joined(separator: ".") }
            return stride(from: 0, to: bytes.count - 1, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                .joined(separator: ":")
        }

        static func formatDate(_ t: time_t) -> String {
            var seconds = t
            var parts = tm()
            gmtime_r(&seconds, &parts)
            func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
            return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) "
                + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) UTC"
        }
    }

    /// Completes its promise when the TLS handshake completes, or fails it with the first error
    /// or the close that comes before; then passes everything on unchanged.
    final class TLSHandshakeWatcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = NIOAny
        let promise: EventLoopPromise<Void>

        init(promise: EventLoopPromise<Void>) { self.promise = promise }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted? = event as? TLSUserEvent { promise.succeed() }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(error)
            context.fireErrorCaught(error)
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(NIOSSLError.uncleanShutdown)
            context.fireChannelInactive()
        }

        /// A connection that never became active (refused, timed out) is torn down without
        /// `channelInactive`: the promise must still complete (NIO traps on a leaked promise).
        func handlerRemoved(context: ChannelHandlerContext) {
            promise.fail(ChannelError.ioOnClosedChannel)
        }
    }
#endif

/// `error` as a TLS failure of the exchange with `endpoint`, or `nil` when it is not one (or
/// this build has no TLS).
func tlsFailure(_ error: any Error, endpoint: String) -> OTLPExportError? {
    #if TLS
        return TLSClient.failure(error, endpoint: endpoint)
    #else
        return nil
    #endif
}
