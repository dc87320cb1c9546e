import Foundation
import Testing

@testable import Resilience

@Suite struct MetricRegistryTests {
    @Test func concurrentIncrementsOnStripesAddUpExactly() async {
        let registry = MetricRegistry()
        let counter = registry.series(name: "hits", instrument: .counter, attributes: [("route", .string("/a"))])
        let sum = registry.series(name: "bytes", instrument: .floatingPointCounter, attributes: [])
        let histogram = registry.series(name: "size", instrument: .histogram(boundaries: [10, 100]), attributes: [])
        let threads = 4
        let perThread = 50_000
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<threads {
                group.addTask {
                    // Real threads, each with its own stripe.
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        Thread {
                            for i in 0..<perThread {
                                counter.increment(by: Int64(1))
                                sum.increment(by: 0.5)
                                histogram.record(Double((i + t) % 200))
                            }
                            done.resume()
                        }.start()
                    }
                }
            }
        }
        let families = registry.collect(temporality: .cumulative, now: nowUnixNano())
        let points = Dictionary(uniqueKeysWithValues: families.map { ($0[0].series.name, $0[0]) })
        #expect(points["hits"]?.value == Double(threads * perThread))
        #expect(points["bytes"]?.value == Double(threads * perThread) * 0.5)
        let buckets = points["size"]?.bucketCounts ?? []
        #expect(buckets.reduce(0, +) == UInt64(threads * perThread))
        #expect(buckets.count == 3)
        #expect(points["size"]?.minimum == 0 && points["size"]?.maximum == 199)
    }

    @Test func theSameNameAndAttributesInAnyOrderAreOneSeries() {
        let registry = MetricRegistry()
        let a = registry.series(name: "x", instrument: .counter, attributes: [("a", .string("1")), ("b", .string("2"))])
        let b = registry.series(name: "x", instrument: .counter, attributes: [("b", .string("2")), ("a", .string("1"))])
        #expect(a === b)
        let other = registry.series(name: "x", instrument: .gauge, attributes: [("a", .string("1")), ("b", .string("2"))])
        #expect(other !== a)
        #expect(registry.seriesCount == 2)
    }

    @Test func aRemovedSeriesIsReportedOnceMoreThenForgotten() {
        let registry = MetricRegistry()
        let series = registry.series(name: "gone", instrument: .counter, attributes: [])
        series.increment(by: Int64(3))
        registry.remove(series)
        #expect(registry.collect(temporality: .cumulative, now: nowUnixNano()).count == 1)
        #expect(registry.collect(temporality: .cumulative, now: nowUnixNano()).isEmpty)
        #expect(registry.seriesCount == 0)
    }

    @Test func gaugesReportOnlyOnceSetAndNaNIsNotRecorded() {
        let registry = MetricRegistry()
        let gauge = registry.series(name: "g", instrument: .gauge, attributes: [])
        #expect(registry.collect(temporality: .cumulative, now: nowUnixNano()).isEmpty)
        gauge.add(-2)
        #expect(registry.collect(temporality: .cumulative, now: nowUnixNano()).first?.first?.value == -2)
        let histogram = registry.series(name: "h", instrument: .histogram(boundaries: [1]), attributes: [])
        histogram.record(.nan)
        #expect(registry.collect(temporality: .cumulative, now: nowUnixNano()).count == 1)  // the gauge only
    }

    /// Two threads pinned to two CPUs add to two stripes: no cache line shared between them,
    /// whatever their thread numbers are.
    @Test func threadsOnTwoCPUsAddToTwoStripes() async throws {
        let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        try #require(cpus >= 2, "needs two CPUs")
        let registry = MetricRegistry()
        let counter = registry.series(name: "pinned", instrument: .counter, attributes: [])
        await withTaskGroup(of: Void.self) { group in
            for cpu in 0..<2 {
                group.addTask {
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        Thread {
                            pinToCPU(cpu)
                            for _ in 0..<(1000 * (cpu + 1)) { counter.increment(by: Int64(1)) }
                            done.resume()
                        }.start()
                    }
                }
            }
        }
        #expect(counter.slots.value(0, stripe: 0) == 1000)
        #expect(counter.slots.value(0, stripe: 1) == 2000)
    }
}

/// Pins the calling thread to `cpu` (`sched_setaffinity`, which Glibc's module leaves out
/// without `_GNU_SOURCE`: looked up by name).
private func pinToCPU(_ cpu: Int) {
    typealias SetAffinity = @convention(c) (Int32, Int, UnsafeRawPointer) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_setaffinity") else { return }
    var mask = [UInt64](repeating: 0, count: 16)  // a cpu_set_t: 1,024 bits
    mask[0] = 1 << UInt64(cpu)
    let result = mask.withUnsafeBytes { unsafeBitCast(symbol, to: SetAffinity.self)(0, $0.count, $0.baseAddress!) }
    precondition(result == 0, "sched_setaffinity failed")
}
