/// An error raised by Spillway's own stages (not by the collector or the network).
public struct ResilienceError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong; compare with the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case circuitOpen, shutDown, ringFull, recordTooLarge, partiallyRejected, diskFull, spillFailed, queueFull
        }
        private var base: Base
        /// The circuit breaker is open; the exporter was not called.
        public static let circuitOpen = Code(base: .circuitOpen)
        /// The pipeline shut down before the batch could be exported.
        public static let shutDown = Code(base: .shutDown)
        /// The ring had no room (overflow policy).
        public static let ringFull = Code(base: .ringFull)
        /// One record was larger than the ring's maximum record.
        public static let recordTooLarge = Code(base: .recordTooLarge)
        /// The collector accepted the request but rejected some records (OTLP `partial_success`).
        public static let partiallyRejected = Code(base: .partiallyRejected)
        /// The spill store's disk is full; the batch was dropped (`disk_full`).
        public static let diskFull = Code(base: .diskFull)
        /// The spill store could not write the batch for another reason (`spill_failed`).
        public static let spillFailed = Code(base: .spillFailed)
        /// Collected metric requests waiting in memory for the collector were too many (`queue_full`).
        public static let queueFull = Code(base: .queueFull)
        public var description: String { "\(base)" }
    }

    /// What went wrong.
    public var code: Code
    /// What happened, in words.
    public var message: String
    /// With ``Code/circuitOpen``: how long until the breaker lets a probe through.
    public var retryAfter: Duration?
    /// The error underneath, if any (the failure that opened the breaker). Not part of equality.
    public var cause: (any Error)?

    /// An error; `retryAfter` and `cause` are optional.
    public init(code: Code, message: String, retryAfter: Duration? = nil, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.cause = cause
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.retryAfter == rhs.retryAfter
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
        hasher.combine(retryAfter)
    }

    public var description: String {
        var s = "\(code): \(message)"
        if let cause { s += " (cause: \(cause))" }
        return s
    }
}
