/// Whom the OTLP exporter trusts and, for mutual TLS, who it is: used for `https://` endpoints.
///
/// Every value is a path to a PEM file. The files are read when the exporter is built — at
/// ``TelemetryPipeline/init(configuration:)`` and again at every
/// ``TelemetryPipeline/reconfigure(_:)`` (so a rotated certificate or key is taken up without a
/// restart, even when the paths stay the same). A file that cannot be read or parsed is a
/// ``ConfigurationError`` naming the setting and the file.
///
/// A signal's own settings (``OTLPExporterConfiguration/SignalSettings/tls``) win over the
/// common ones value by value: a `nil` value takes the common one.
public struct ExporterTLSConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// The CA certificates that may sign the collector's certificate (a PEM bundle).
    /// - Default value: `nil`, the system trust store.
    /// - Environment variable: `OTEL_EXPORTER_OTLP_CERTIFICATE` (per signal:
    ///   `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, `…_LOGS_CERTIFICATE`).
    public var certificateFile: String?
    /// The client's certificate chain, for collectors that require mutual TLS; needs
    /// ``clientKeyFile``. - Default value: `nil` (no client certificate).
    /// - Environment variable: `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` (and per signal).
    public var clientCertificateFile: String?
    /// The private key of ``clientCertificateFile``. - Default value: `nil`.
    /// - Environment variable: `OTEL_EXPORTER_OTLP_CLIENT_KEY` (and per signal).
    public var clientKeyFile: String?

    /// TLS settings naming these files; `nil` values take the defaults (or, for a signal, the common values).
    public init(certificateFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil) {
        self.certificateFile = certificateFile
        self.clientCertificateFile = clientCertificateFile
        self.clientKeyFile = clientKeyFile
    }

    /// These settings with every value `own` sets taking its place.
    func overridden(by own: ExporterTLSConfiguration) -> ExporterTLSConfiguration {
        ExporterTLSConfiguration(
            certificateFile: own.certificateFile ?? certificateFile,
            clientCertificateFile: own.clientCertificateFile ?? clientCertificateFile,
            clientKeyFile: own.clientKeyFile ?? clientKeyFile)
    }

    /// Whether any file is named (the files are then read again at every reconfigure).
    var namesFiles: Bool { certificateFile != nil || clientCertificateFile != nil || clientKeyFile != nil }

    public var description: String {
        "(certificate: \(certificateFile ?? "system trust store"), client certificate: \(clientCertificateFile ?? "-"), "
            + "client key: \(clientKeyFile ?? "-"))"
    }

    func validate(prefix: String) throws(ConfigurationError) {
        switch (clientCertificateFile, clientKeyFile) {
        case (.some, nil):
            throw ConfigurationError(
                key: "\(prefix).clientKeyFile", value: "nil", allowed: "the client certificate's key file (clientCertificateFile is set)")
        case (nil, .some):
            throw ConfigurationError(
                key: "\(prefix).clientCertificateFile", value: "nil", allowed: "the client key's certificate file (clientKeyFile is set)")
        default:
            break
        }
        for (key, path) in [("certificateFile", certificateFile), ("clientCertificateFile", clientCertificateFile)]
        where path?.isEmpty == true {
            throw ConfigurationError(key: "\(prefix).\(key)", value: "", allowed: "a path to a PEM file, or nil")
        }
    }
}
