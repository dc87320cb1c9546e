// Emits N spans or N log records (the shapes of the Benchmarks package's emit benchmarks) into a
// pipeline whose exporter discards, then exits. Run twice with two N under callgrind: the
// difference of the emitting thread's instructions, divided by the difference of N, is the cost
// of one record (Benchmarks/Instructions/measure.sh).
import CoreMetrics
import Dispatch
import Logging
@_spi(Benchmarks) import Resilience
import SpillwayIntegration
import Tracing

#if canImport(Glibc)
    import Glibc
#endif

/// Exports nothing: isolates the emit path from the network.
struct DiscardingExporter: TelemetryExporter {
    let name = "discard"
    func export(_ batch: ExportBatch) async throws -> ExportResponse { .accepted }
}

@inline(never)
func emitLog(_ logger: TelemetryLogger, _ i: Int) {
    logger.emit(severity: .info, body: "user signed in") {
        $0.set("user.id", i)
        $0.set("session.new", true)
        $0.set("auth.method", "password")
    }
}

/// Not for callgrind: `spans` spans from 1 or 2 threads, timed on the wall clock with the drain
/// thread running beside them (the two-thread scaling of issue 28, over many more spans than a
/// benchmark sample). `EmitInstructions 2000000 wall1` / `wall2`.
nonisolated func wallClockRun(_ pipeline: TelemetryPipeline, spans: Int, threads: Int) {
    final class Work: @unchecked Sendable {
        let tracer: Resilience.Tracer
        let count: Int
        var cpu = timespec()
        init(_ tracer: Resilience.Tracer, _ count: Int) { (self.tracer, self.count) = (tracer, count) }
    }
    let drainBefore = spillwayThreadCPU()["spillway-drain"]?.ns ?? 0
    let works = (0..<threads).map { _ in Work(pipeline.tracer(scope: "bench"), spans / threads) }
    var start = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    var ids = [pthread_t](repeating: pthread_t(), count: threads)
    for t in 0..<threads {
        pthread_create(
            &ids[t], nil,
            { context in
                let work = Unmanaged<Work>.fromOpaque(context!).takeUnretainedValue()
                for i in 0..<work.count { emitSpan(work.tracer, i) }
                clock_gettime(CLOCK_THREAD_CPUTIME_ID, &work.cpu)
                return nil
            }, Unmanaged.passUnretained(works[t]).toOpaque())
    }
    for id in ids { pthread_join(id, nil) }
    var end = timespec()
    clock_gettime(CLOCK_MONOTONIC, &end)
    let ns = Double(end.tv_sec - start.tv_sec) * 1e9 + Double(end.tv_nsec - start.tv_nsec)
    let stats = pipeline.stats().spans
    print(
        "\(threads) thread(s): \(spans) spans in \(Int(ns / 1e6)) ms, \(Int(ns / Double(spans))) ns per span (wall), "
            + "\(Int(Double(spans) / ns * 1e6)) k spans/s; drained by then \(stats.emitted), exported \(stats.exported)")
    // CPU a span on each side: the emitting threads' own clocks; the drain thread's until everything is exported.
    let emitting = works.reduce(0.0) { $0 + Double($1.cpu.tv_sec) * 1e9 + Double($1.cpu.tv_nsec) }
    flush(pipeline)
    let drain = (spillwayThreadCPU()["spillway-drain"]?.ns ?? 0) - drainBefore
    print("CPU a span: emitting \(Int(emitting / Double(spans))) ns, drain \(Int(drain / Double(spans))) ns")
}

/// Not for callgrind: a service's steady load — `rate` requests a second for `seconds` seconds, one
/// span and one log record each, emitted in a burst every millisecond — then each spillway thread's
/// CPU time and how often it was put on a CPU (/proc/self/task/*/schedstat): what the pipeline's own
/// threads cost a service at a rate far below their ceiling. `EmitInstructions 28000 steady [seconds]`.
nonisolated func steadyRun(_ tracer: Resilience.Tracer, _ logger: TelemetryLogger, rate: Int, seconds: Int) {
    var next = timespec()
    clock_gettime(CLOCK_MONOTONIC, &next)
    var emitted = 0
    for tick in 1...(seconds * 1000) {
        let due = rate * tick / 1000
        while emitted < due {
            emitSpan(tracer, emitted)
            emitLog(logger, emitted)
            emitted += 1
        }
        next.tv_nsec += 1_000_000
        if next.tv_nsec >= 1_000_000_000 { (next.tv_sec, next.tv_nsec) = (next.tv_sec + 1, next.tv_nsec - 1_000_000_000) }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nil)
    }
    print("\(emitted) requests (a span and a log record each) at \(rate)/s for \(seconds) s")
    for (name, thread) in spillwayThreadCPU().sorted(by: { $0.key < $1.key }) {
        print(
            "\(name): \(Int(thread.ns / 1e6)) ms CPU (\(Int(thread.ns / Double(emitted))) ns a request), "
                + "\(Int(thread.slices / Double(seconds))) wake-ups a second (\(String(format: "%.3f", thread.slices / Double(emitted))) a request)")
    }
}

/// Exports everything emitted so far (blocks the calling thread).
nonisolated func flush(_ pipeline: TelemetryPipeline) {
    let flushed = DispatchSemaphore(value: 0)
    Task.detached {
        await pipeline.forceFlush()
        flushed.signal()
    }
    flushed.wait()
}

/// Each spillway thread's CPU time (ns) and times put on a CPU, summed by name (/proc/self/task/*/schedstat).
nonisolated func spillwayThreadCPU() -> [String: (ns: Double, slices: Double)] {
    func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        return fgets(&line, 256, file).map { _ in String(cString: line).split(separator: "\n").first.map(String.init) ?? "" }
    }
    guard let dir = opendir("/proc/self/task") else { return [:] }
    defer { closedir(dir) }
    var threads: [String: (ns: Double, slices: Double)] = [:]
    while let entry = readdir(dir) {
        let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        guard tid.first?.isNumber == true, let name = read("/proc/self/task/\(tid)/comm"), name.hasPrefix("spillway"),
            let fields = read("/proc/self/task/\(tid)/schedstat")?.split(separator: " "), fields.count == 3,
            let ns = Double(fields[0]), let slices = Double(fields[2])
        else { continue }
        let sum = threads[name, default: (0, 0)]
        threads[name] = (sum.ns + ns, sum.slices + slices)
    }
    return threads
}

@inline(never)
func increment(_ counter: Counter) { counter.increment() }

@inline(never)
func record(_ timer: Timer, _ i: Int) { timer.recordNanoseconds(Int64(i & 1023) * 100_000) }

// A ring large enough that nothing is dropped when the drain thread, serialised by valgrind, falls behind.
let arguments = CommandLine.arguments
let kind = arguments.count > 2 ? arguments[2] : "span"
let steadySeconds = arguments.count > 3 ? Int(arguments[3]) : 10
let shapes = [
    "span", "log", "withspan", "withspan-noop", "swiftlog", "swiftlog-noop", "swiftlog-request", "swiftlog-request-noop", "counter",
    "timer", "exponential", "collect", "wall1", "wall2", "steady", "floor", "floor-dump",
]
// An unknown shape used to fall through to the timer's: a typo measured the wrong thing without a word.
guard arguments.count > 1, let n = Int(arguments[1]), n > 0, let steadySeconds, steadySeconds > 0, shapes.contains(kind) else {
    print("usage: EmitInstructions COUNT [SHAPE]   or   EmitInstructions RATE steady [SECONDS]  (positive whole numbers)")
    print("shapes: \(shapes.joined(separator: ", "))")
    exit(2)
}
var configuration = PipelineConfiguration(serviceName: "bench")
configuration.ringCapacity = 256 << 20
if kind == "exponential" { configuration.metrics.histogramAggregation = .base2ExponentialBucketHistogram }
let pipeline = try TelemetryPipeline(configuration: configuration, exporter: DiscardingExporter())
let tracer = pipeline.tracer(scope: "bench")
let logger = pipeline.logger(scope: "bench")
for i in 0..<1000 {
    emitSpan(tracer, i)
    emitLog(logger, i)
}
// swift-metrics through SpillwayMetricsFactory: a handler made once, 2 dimensions, as a service keeps it.
let factory = SpillwayMetricsFactory(pipeline: pipeline)
let counter = Counter(label: "http.requests", dimensions: [("http.route", "/api/cart"), ("http.request.method", "GET")], factory: factory)
let timer = Timer(label: "http.duration", dimensions: [("http.route", "/api/cart"), ("http.request.method", "GET")], factory: factory)
for i in 0..<1000 {
    counter.increment()
    timer.recordNanoseconds(Int64(i) * 10_000)
}
let spillwayTracer = SpillwayTracer(pipeline: pipeline, scope: "bench")
let spillwayLogger = Logger(label: "bench") { SpillwayLogHandler(pipeline: pipeline, label: $0) }
let noOpLogger = Logger(label: "bench") { _ in DiscardingLogHandler() }
for i in 0..<1000 {
    emitWithSpan(spillwayTracer, i)
    emitWithSpan(NoOpTracer(), i)
    emitInfo(spillwayLogger, i)
    emitInfo(noOpLogger, i)
    emitRequestInfo(spillwayLogger, i)
    emitRequestInfo(noOpLogger, i)
}
let floorRing = FloorRing()
floorSpans(floorRing, count: 1000)
switch kind {
case "span": for i in 0..<n { emitSpan(tracer, i) }
case "floor": floorSpans(floorRing, count: n)
case "floor-dump":  // one floor span's bytes on standard output, for an independent decoder
    floorRing.head.store(0, ordering: .relaxed)
    floorSpans(floorRing, count: 1, first: n)
    let length = Int(floorRing.base.load(as: UInt32.self))
    _ = write(1, floorRing.base + 4, length)
    exit(0)
case "wall1", "wall2": wallClockRun(pipeline, spans: n, threads: kind == "wall1" ? 1 : 2)
case "steady": steadyRun(tracer, logger, rate: n, seconds: steadySeconds)
case "withspan": for i in 0..<n { emitWithSpan(spillwayTracer, i) }
case "withspan-noop": for i in 0..<n { emitWithSpan(NoOpTracer(), i) }
case "swiftlog": for i in 0..<n { emitInfo(spillwayLogger, i) }
case "swiftlog-noop": for i in 0..<n { emitInfo(noOpLogger, i) }
case "swiftlog-request": for i in 0..<n { emitRequestInfo(spillwayLogger, i) }
case "swiftlog-request-noop": for i in 0..<n { emitRequestInfo(noOpLogger, i) }
case "log": for i in 0..<n { emitLog(logger, i) }
case "counter": for _ in 0..<n { increment(counter) }
case "collect":  // not measured by measure.sh: `perf record` it for where a collection's time goes
    for i in 0..<10_000 { Counter(label: "requests.\(i % 10)", dimensions: [("user", "u\(i)")], factory: factory).increment() }
    for _ in 0..<n { _ = _SpillwayBenchmarkHooks.collectMetrics(of: pipeline) }
default: for i in 0..<n { record(timer, i) }
}
// The drain thread's share (the callgrind file of thread 2) is whole when every record emitted
// has been exported: one flush, the same in every run (polling the stats instead counted its own
// allocations on this thread, more of them in the longer run).
flush(pipeline)
let s = pipeline.stats()
print("emitted spans \(s.spans.emitted) logs \(s.logs.emitted) dropped \(s.spans.droppedTotal + s.logs.droppedTotal)")
exit(0)
