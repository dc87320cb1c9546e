import NIOCore

#if TLS
    import NIOSSL
#endif

extension OTLPReceiver {
    /// The receiver's TLS set-up: its certificate and key, and the CAs whose client certificates
    /// it requires (mutual TLS) if any. Every value is a path to a PEM file.
    public struct TLS: Sendable, Hashable {
        /// The server's certificate chain (leaf first).
        public var certificateChainFile: String
        /// The server certificate's private key.
        public var privateKeyFile: String
        /// When set, a client must present a certificate signed by one of these CAs.
        public var clientCAFile: String?

        /// The receiver's certificate chain and key, and the client CAs if clients must present certificates.
        public init(certificateChainFile: String, privateKeyFile: String, clientCAFile: String? = nil) {
            self.certificateChainFile = certificateChainFile
            self.privateKeyFile = privateKeyFile
            self.clientCAFile = clientCAFile
        }
    }

    /// Thrown by
    /// ``start(port:retention:countIDs:tls:protocol:maximumConcurrentStreams:receiveWindow:ownEventLoops:)``
    /// when a TLS file cannot be read as what it should be.
    public struct TLSFileError: Error, CustomStringConvertible {
        public var path: String
        public var expected: String
        public var underlying: String
        public var description: String { "\(path): not \(expected) (\(underlying))" }
    }

    /// Thrown by ``start(port:retention:countIDs:tls:)`` with a ``TLS`` in a build without the
    /// package trait `TLS`.
    public struct TLSUnavailableError: Error, CustomStringConvertible {
        public var description: String { "this build of Spillway leaves out TLS (the package trait TLS)" }
    }
}

/// The server side of TLS for ``OTLPReceiver``: one context, a handler per connection.
struct ServerTLS: Sendable {
    #if TLS
        let context: NIOSSLContext

        init(_ tls: OTLPReceiver.TLS, applicationProtocols: [String] = []) throws {
            // A file that is not what it should be is named, with what was expected of it.
            func load<T>(_ path: String, _ what: String, _ body: () throws -> T) throws -> T {
                do { return try body() } catch { throw OTLPReceiver.TLSFileError(path: path, expected: what, underlying: "\(error)") }
            }
            let chain = try load(tls.certificateChainFile, "a PEM certificate chain") {
                try NIOSSLCertificate.fromPEMFile(tls.certificateChainFile)
            }
            let key = try load(tls.privateKeyFile, "a PEM private key") { try NIOSSLPrivateKey(file: tls.privateKeyFile, format: .pem) }
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            if let clientCA = tls.clientCAFile {
                configuration.trustRoots = .certificates(
                    try load(clientCA, "PEM CA certificates") { try NIOSSLCertificate.fromPEMFile(clientCA) })
                configuration.certificateVerification = .noHostnameVerification
            }
            configuration.applicationProtocols = applicationProtocols
            context = try NIOSSLContext(configuration: configuration)
        }

        func addHandler(to channel: any Channel) throws {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }
    #else
        init(_ tls: OTLPReceiver.TLS, applicationProtocols: [String] = []) throws { throw OTLPReceiver.TLSUnavailableError() }
        func addHandler(to channel: any Channel) throws {}
    #endif
}
