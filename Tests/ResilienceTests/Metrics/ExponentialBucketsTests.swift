import Foundation
import Testing

@testable import Resilience

@Suite struct ExponentialBucketsTests {
    /// The index at scale 3 against the definition, computed another way: bucket i holds
    /// (2^(i/8), 2^((i+1)/8)], so i = ⌈8·log2 v⌉ − 1 (values far from a boundary).
    @Test func theRecordingIndexIsTheDefinitionsAcrossTheWholeRange() {
        var generator = SystemRandomNumberGenerator()
        var wrong: [Double] = []  // one expectation for all: 20,000 of them cost seconds in a debug build
        for _ in 0..<20_000 {
            let value = exp2(Double.random(in: -1000...1000, using: &generator))
            let exact = 8 * log2(value)
            guard abs(exact - exact.rounded()) > 1e-6 else { continue }
            if ExponentialBuckets.index(value) != Int(exact.rounded(.up)) - 1 { wrong.append(value) }
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(5))")
        // Powers of two close the bucket below them; subnormals have their true exponent.
        #expect(ExponentialBuckets.index(1) == -1)
        #expect(ExponentialBuckets.index(2) == 7)
        #expect(ExponentialBuckets.index(0.5) == -9)
        #expect(ExponentialBuckets.index(.leastNonzeroMagnitude) == -1074 * 8 - 1)
        #expect(ExponentialBuckets.index(.greatestFiniteMagnitude) == 1023 * 8 + 7)
    }

    @Test func foldingKeepsEveryCountAndFitsMaxSize() {
        let buckets = ExponentialBuckets(maxSize: 160)
        let values: [Double] = [1e-300, 1e-9, 0.001, 1, 1.5, 1000, 1e12, -3, -1e200]
        for value in values { buckets.record(value) }
        let totals = buckets.totals()
        #expect(totals.reduce(0, +) == UInt64(values.count))
        // 1e-300 and 1e200 are outside their windows: scale −4, where all of `Double` fits 132.
        let folded = buckets.fold(totals)
        #expect(folded.scale == -4)
        #expect(folded.positive.counts.reduce(0, +) == 7 && folded.negative.counts.reduce(0, +) == 2)
        for size in [2, 3, 7, 50] {
            let small = ExponentialBuckets.fold(totals, positiveBase: 0, negativeBase: 0, maxSize: size)
            #expect(small.positive.counts.count <= size && small.negative.counts.count <= size)
            #expect(small.positive.counts.reduce(0, +) == 7, "maxSize \(size)")
        }
    }

    @Test func aNarrowSeriesStaysAtTheRecordingScale() {
        let buckets = ExponentialBuckets(maxSize: 160)
        for value in stride(from: 1.01, to: 1.99, by: 0.01) { buckets.record(value) }
        let folded = buckets.fold(buckets.totals())
        #expect(folded.scale == 3)
        #expect(folded.positive.offset == 0 && folded.positive.counts.count == 8)
        #expect(folded.negative.counts.isEmpty)
    }

    @Test func threadsRecordingAtOnceLoseNothing() async {
        let registry = MetricRegistry()
        let series = registry.series(name: "h", instrument: .exponentialHistogram(maxSize: 160), attributes: [])
        let perThread = 20_000
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<2 {
                group.addTask {
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        Thread {
                            for i in 0..<perThread { series.record(Double((i + t) % 300) - 100) }
                            done.resume()
                        }.start()
                    }
                }
            }
        }
        let point = registry.collect(temporality: .cumulative, now: nowUnixNano()).first?.first
        #expect(point?.exponential?.count == UInt64(2 * perThread))
        #expect(point?.minimum == -100 && point?.maximum == 199)
        // The status endpoint's classic buckets: increasing bounds, every value counted once.
        let classic = point.map { PrometheusExposition.classicBuckets($0) } ?? []
        #expect(zip(classic, classic.dropFirst()).allSatisfy { $0.0 < $1.0 })
        #expect(classic.reduce(0) { $0 + $1.1 } == UInt64(2 * perThread))
    }
}
