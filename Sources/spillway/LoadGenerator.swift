import CoreMetrics
import Foundation
import Resilience
import SpillwayIntegration

/// Emits numbered spans and log records through a pipeline from several threads, at a rate,
/// showing progress. Every record carries `spillway.load.seq` (unique in the run: spans
/// 0..<spans, logs 0..<logs) so that a receiver can find loss and duplicates.
struct LoadGenerator {
    var spans: Int
    var logs: Int
    var rate: Double  // records per second, all threads together; 0 is unlimited
    var threads: Int
    var showProgress: Bool
    /// Added to every `spillway.load.seq` (runs that share a receiver stay distinct).
    var sequenceStart = 0
    /// Updates through the swift-metrics API (``SpillwayMetricsFactory``), after the records:
    /// a counter over 4 regions, a gauge and a histogram, in turn.
    var metrics = 0
    /// For the crash tests: print `acked <thread> <seq>` (unbuffered) after every 256th record a
    /// thread's emit returned as queued, and `refused <seq>` for each one refused. With one line
    /// per thread in order, every record of the thread up to that seq returned before the line.
    var reportAcks = false
    /// For the crash tests: thread 0 dies at its record number `crashAt`, in the middle of the
    /// span (after its attributes, before `end`), by `abort()` or a Swift `fatalError`.
    var crash: (at: Int, with: String)?

    struct Result {
        var elapsed: Duration
        /// Wall time spent inside emit calls, summed over threads, per record.
        var emitNanosecondsPerRecord: Double
        /// The longest single emit call: how long the app's thread was held.
        var emitNanosecondsMax: UInt64 = 0
        /// The 50th and 99th percentile of single emit calls, in nanoseconds (from buckets 1/8 of a power of two wide).
        var emitNanosecondsP50: UInt64 = 0
        var emitNanosecondsP99: UInt64 = 0
        var accepted: Int
        var refused: Int
        /// Records emitted (less than asked when interrupted).
        var emitted: Int { accepted + refused }
    }

    /// Emits until done, or until `stop` is set (SIGINT). Returns what was emitted.
    func run(pipeline: TelemetryPipeline, stop: StopFlag = StopFlag()) -> Result {
        let tracer = pipeline.tracer(scope: "spillway.load", version: "1")
        let logger = pipeline.logger(scope: "spillway.load", version: "1")
        // The instruments only when asked for: a series, once made, is exported every interval.
        let factory: any MetricsFactory = metrics > 0 ? SpillwayMetricsFactory(pipeline: pipeline) : NOOPMetricsHandler.instance
        let counters = ["eu", "us", "ap", "sa"].map {
            Counter(label: "spillway.load.requests", dimensions: [("region", $0)], factory: factory)
        }
        let gauge = Meter(label: "spillway.load.inflight", factory: factory)
        let histogram = Recorder(label: "spillway.load.size", dimensions: [("unit", "bytes")], factory: factory)
        let progress = ProgressCounter()
        let group = DispatchGroup()
        let start = ContinuousClock.now
        let total = spans + logs
        let perThreadRate = rate > 0 ? rate / Double(threads) : 0
        for t in 0..<threads {
            group.enter()
            Thread {
                var emitNanos: UInt64 = 0
                var emitMax: UInt64 = 0
                var latencies = LatencyBuckets()
                var accepted = 0
                var refused = 0
                var n = 0
                let threadStart = DispatchTime.now().uptimeNanoseconds
                var seq = t
                while seq < spans + logs && !stop.isSet {
                    if perThreadRate > 0 {
                        let due = threadStart + UInt64(Double(n) / perThreadRate * 1e9)
                        let now = DispatchTime.now().uptimeNanoseconds
                        if due > now { usleep(UInt32(min((due - now) / 1000, 100_000))) }
                    }
                    let before = DispatchTime.now().uptimeNanoseconds
                    let result: EmitResult
                    if seq < spans {
                        let span = tracer.startSpan(spanNames[seq & 15], kind: .server)
                        span.setAttribute("spillway.load.seq", seq + sequenceStart)
                        span.setAttribute("http.request.method", "GET")
                        span.setAttribute("http.route", "/load/{id}")
                        span.setAttribute("http.response.status_code", 200)
                        span.setAttribute("load.thread", t)
                        if t == 0, let crash, crash.at == n { Self.die(crash.with) }
                        result = span.end()
                    } else {
                        result = logger.emit(severity: .info, body: "load record") {
                            $0.set("spillway.load.seq", seq - spans + sequenceStart)
                            $0.set("load.thread", t)
                        }
                    }
                    let took = DispatchTime.now().uptimeNanoseconds &- before
                    emitNanos &+= took
                    emitMax = max(emitMax, took)
                    latencies.record(took)
                    if result.isAccepted { accepted += 1 } else { refused += 1 }
                    if reportAcks {
                        if !result.isAccepted { Self.say("refused \(seq)") } else if accepted & 255 == 0 { Self.say("acked \(t) \(seq)") }
                    }
                    n += 1
                    seq += threads
                    if n & 1023 == 0 { progress.add(1024) }
                }
                var update = t
                while update < metrics && !stop.isSet {
                    switch update % 3 {
                    case 0: counters[(update / 3) & 3].increment()
                    case 1: gauge.set(Double(update % 100))
                    default: histogram.record(Double(update % 1000))
                    }
                    update += threads
                }
                if reportAcks && seq - threads >= 0 { Self.say("acked \(t) \(seq - threads)") }
                progress.add(n & 1023)
                progress.finish(thread: (emitNanos, accepted, refused), max: emitMax, latencies: latencies)
                group.leave()
            }.start()
        }
        if showProgress {
            while group.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
                ProgressBar.draw(done: progress.done, total: total, since: start, unit: "records")
            }
            ProgressBar.draw(done: progress.done, total: total, since: start, unit: "records")
            FileHandle.standardError.write("\n".data(using: .utf8)!)
        } else {
            group.wait()
        }
        let (nanos, accepted, refused) = progress.totals
        return Result(
            elapsed: ContinuousClock.now - start, emitNanosecondsPerRecord: total == 0 ? 0 : Double(nanos) / Double(total),
            emitNanosecondsMax: progress.maxEmit, emitNanosecondsP50: progress.latencies.percentile(0.5),
            emitNanosecondsP99: progress.latencies.percentile(0.99), accepted: accepted, refused: refused)
    }
}

extension LoadGenerator {
    /// One line on standard output with one `write`: nothing buffered is lost when the process dies.
    static func say(_ line: String) {
        var bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
    }

    static func die(_ how: String) -> Never {
        if how == "abort" { abort() }
        fatalError("spillway load: --crash-with fatal-error, in the middle of a span")
    }
}

/// Emit latencies by bucket: 8 a power of two (≈ 9 % wide), from 1 ns to 2^40 ns; no allocation per record.
struct LatencyBuckets {
    private var counts = [Int](repeating: 0, count: 41 * 8)

    mutating func record(_ nanoseconds: UInt64) {
        let value = max(nanoseconds, 1)
        let octave = 63 - value.leadingZeroBitCount
        let fraction = octave >= 3 ? Int((value >> (octave - 3)) & 7) : 0
        counts[min(octave * 8 + fraction, counts.count - 1)] += 1
    }

    mutating func merge(_ other: LatencyBuckets) { for i in counts.indices { counts[i] += other.counts[i] } }

    /// The upper bound of the bucket holding the `q`-quantile.
    func percentile(_ q: Double) -> UInt64 {
        let total = counts.reduce(0, +)
        guard total > 0 else { return 0 }
        var seen = 0
        for (i, n) in counts.enumerated() {
            seen += n
            if Double(seen) >= q * Double(total) {
                let octave = i / 8, fraction = UInt64(i % 8)
                return octave >= 3 ? (8 + fraction + 1) << (octave - 3) : 1 << (octave + 1)
            }
        }
        return 0
    }
}

/// Made once: interpolating a name per span would allocate on the emit path.
let spanNames = (0..<16).map { "GET /load/\($0)" }

final class ProgressCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var sums: (UInt64, Int, Int) = (0, 0, 0)
    private var longest: UInt64 = 0
    func add(_ n: Int) {
        lock.lock()
        count += n
        lock.unlock()
    }
    var done: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }
    private(set) var latencies = LatencyBuckets()
    func finish(thread: (UInt64, Int, Int), max emitMax: UInt64, latencies threadLatencies: LatencyBuckets) {
        lock.lock()
        latencies.merge(threadLatencies)
        sums = (sums.0 + thread.0, sums.1 + thread.1, sums.2 + thread.2)
        longest = max(longest, emitMax)
        lock.unlock()
    }
    var maxEmit: UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return longest
    }
    var totals: (UInt64, Int, Int) {
        lock.lock()
        defer { lock.unlock() }
        return sums
    }
}

enum ProgressBar {
    /// One line on standard error: `[#########.........]  45%  450,000/1,000,000 records  1.2 M/s`.
    static func draw(done: Int, total: Int, since start: ContinuousClock.Instant, unit: String) {
        let width = 30
        let fraction = total == 0 ? 1 : min(1, Double(done) / Double(total))
        let filled = Int(fraction * Double(width))
        let elapsed = ContinuousClock.now - start
        let seconds = max(1e-9, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        let line =
            "\r[\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] "
            + "\(String(format: "%3d", Int(fraction * 100)))%  \(done)/\(total) \(unit)  \(formatRate(Double(done) / seconds))/s "
        FileHandle.standardError.write(line.data(using: .utf8)!)
    }
}

func formatRate(_ value: Double) -> String {
    if value >= 1e6 { return String(format: "%.2f M", value / 1e6) }
    if value >= 1e3 { return String(format: "%.1f k", value / 1e3) }
    return String(format: "%.0f", value)
}

/// `850 ns`, `12.5 µs`, `3.2 ms`.
func formatNanoseconds(_ value: UInt64) -> String {
    if value >= 1_000_000 { return String(format: "%.1f ms", Double(value) / 1e6) }
    if value >= 1_000 { return String(format: "%.1f µs", Double(value) / 1e3) }
    return "\(value) ns"
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

/// `20s`, `500ms`, `2m` or a bare number of seconds; `nil` for anything else.
func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        guard let value = Double(text.dropLast(suffix.count)), value.isFinite, value >= 0 else { return nil }
        return .milliseconds(Int64(value * scale * 1000))
    }
    guard let value = Double(text), value.isFinite, value >= 0 else { return nil }
    return .milliseconds(Int64(value * 1000))
}
