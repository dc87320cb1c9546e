import ArgumentParser
import Foundation
import Resilience
import ResilienceTesting

/// `spillway receive`: the embedded OTLP/HTTP receiver as a process of its own, for trying the
/// tools and the fault scenarios by hand (`--fail 503 --from 5 --until 15` fails requests between
/// 5 s and 15 s after start). Prints what arrived every few seconds, and at SIGINT.
struct Receive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the embedded OTLP/HTTP receiver, optionally failing for a while.")

    @Option(help: "Port on 127.0.0.1 (0 picks a free one, printed at start).") var port = 4318
    @Option(help: "Answer this status (or 'reset') instead of accepting, from --from to --until seconds after start.") var fail: String?
    @Option(help: "Seconds after start when the failure begins.") var from: Double = 0
    @Option(help: "Seconds after start when the failure ends (default: never).") var until: Double = .infinity
    @Option(help: "Print a report every this many seconds.") var every: Double = 5
    @Option(help: "Answer every accepted request this many milliseconds late: a distant collector.") var delay: Int = 0
    @Option(help: "Speak TLS with this certificate chain (PEM); needs --tls-key.") var tlsCertificate: String?
    @Option(help: "The private key of --tls-certificate (PEM).") var tlsKey: String?
    @Option(help: "Require client certificates signed by these CAs (PEM): mutual TLS.") var tlsClientCA: String?
    @Option(help: "http/protobuf, or grpc (OTLP/gRPC over HTTP/2).") var `protocol` = "http/protobuf"

    func validate() throws {
        if let fail, fail != "reset", Int(fail).map({ (100...599).contains($0) }) != true {
            throw ValidationError("--fail: an HTTP status from 100 to 599, or reset; got \(fail)")
        }
        guard from >= 0, until > from, every > 0 else { throw ValidationError("--from, --until, --every: 0 <= from < until, every > 0") }
        guard (0...600_000).contains(delay) else { throw ValidationError("--delay: milliseconds from 0 to 600000, got \(delay)") }
        guard OTLPProtocol(rawValue: `protocol`) != nil else {
            throw ValidationError("--protocol: http/protobuf or grpc, got \(`protocol`)")
        }
        guard (tlsCertificate == nil) == (tlsKey == nil), tlsClientCA == nil || tlsCertificate != nil else {
            throw ValidationError("--tls-certificate and --tls-key go together (and --tls-client-ca needs them)")
        }
    }

    func run() async throws {
        let tls = tlsCertificate.map { OTLPReceiver.TLS(certificateChainFile: $0, privateKeyFile: tlsKey!, clientCAFile: tlsClientCA) }
        let receiver = try await OTLPReceiver.start(
            port: port, retention: [], countIDs: false, tls: tls, protocol: OTLPProtocol(rawValue: `protocol`)!)
        print("receiving on \(receiver.endpoint)")
        fflush(nil)
        let start = ContinuousClock.now
        let failure: OTLPReceiver.Behavior? = fail.map { $0 == "reset" ? .resetConnection : .fail(status: Int($0)!) }
        let success: OTLPReceiver.Behavior = delay > 0 ? .delay(.milliseconds(delay)) : .accept
        var lastReport = start
        signal(SIGINT, SIG_IGN)
        let interrupts = DispatchSource.makeSignalSource(signal: SIGINT)
        let stopped = StopFlag()
        interrupts.setEventHandler { stopped.set() }
        interrupts.resume()
        while !stopped.isSet {
            let elapsed = seconds(start.duration(to: .now))
            receiver.behavior = failure != nil && elapsed >= from && elapsed < until ? failure! : success
            if start.duration(to: .now) - start.duration(to: lastReport) >= .milliseconds(Int64(every * 1000)) {
                lastReport = .now
                print(
                    String(
                        format: "t=%.0fs requests=%d spans=%d logs=%d", elapsed, receiver.requestCount, receiver.spanCount,
                        receiver.logCount))
                fflush(nil)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        print(
            "requests=\(receiver.requestCount) spans=\(receiver.spanCount) logs=\(receiver.logCount) "
                + "statuses=\(receiver.diagnostics.statuses)"
        )
        try await receiver.stop()
    }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }
    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
