import Synchronization

/// Time an export attempt spent setting up its connection (TCP connect, and later TLS), which
/// the exporter adds here and ``TransportRecorder`` takes out of the latency it reports to the
/// ``ExportWindow``: a window that opens makes new connections, and their set-up is not the
/// collector queueing requests.
///
/// A task local set by ``TransportRecorder`` for one attempt. Thread-safety: safe from any thread.
final class TransportTiming: Sendable {
    @TaskLocal static var current: TransportTiming?

    /// Nanoseconds spent on connection set-up in this attempt.
    let setupNanoseconds = Atomic<Int64>(0)
}
