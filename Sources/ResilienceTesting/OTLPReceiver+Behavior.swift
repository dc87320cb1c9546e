extension OTLPReceiver {
    /// How the receiver answers requests.
    public enum Behavior: Sendable, Hashable {
        /// Decode, count, answer 200 with an empty OTLP response.
        case accept
        /// Answer `status` (with `Retry-After` if given) and a `google.rpc.Status` body; count nothing.
        case fail(status: Int, retryAfter: String? = nil)
        /// Reset the connection (RST) without answering.
        case resetConnection
        /// Wait, then accept.
        case delay(Duration)
        /// Answer 200 with a body that is not an OTLP response.
        case garbage
        /// Send the status line and part of the body, then close.
        case closeMidResponse
        /// Accept, count, and report `rejected` records as rejected (OTLP partial success).
        case partialSuccess(rejected: Int, message: String)
        /// Fail the next `count` requests with `status` (and `Retry-After` if given), then accept.
        case failFirst(count: Int, status: Int, retryAfter: String? = nil)
        /// Answer `status` with a message that repeats the value of the request header `header`
        /// (as careless collectors do with credentials).
        case failEchoingHeader(status: Int, header: String)
        /// Fail a random fraction `rate` of requests — half with 503, half with a connection
        /// reset — and accept the rest. Deterministic for a given `seed`.
        case randomFaults(rate: Double, seed: UInt64)
        /// Over gRPC: answer the status `code` (with a `google.rpc.RetryInfo` of `retryDelay` among
        /// the status details, if given). Over HTTP: answer 500.
        case failGRPC(code: Int, retryDelay: Duration? = nil)
        /// Accept every request; over gRPC, after every `every`-th call of a connection send
        /// GOAWAY naming the highest stream it has seen as the last one taken, and close the
        /// connection 200 ms later — what a collector's maximum connection age does (streams the
        /// client opens after the GOAWAY are not processed). Over HTTP: accept.
        case goAway(every: Int)
    }
}
