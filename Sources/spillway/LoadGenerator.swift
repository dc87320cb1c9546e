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
                progress.finish(thread: (emitNanos, accepted, refused), max: emitMax)
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
            emitNanosecondsMax: progress.maxEmit, accepted: accepted, refused: refused)
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
    func finish(thread: (UInt64, Int, Int), max emitMax: UInt64) {
        lock.lock()
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
