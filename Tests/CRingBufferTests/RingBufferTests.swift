import CRingBuffer
import Foundation
import Testing

/// Owns a ring for one test and frees it.
final class TestRing: @unchecked Sendable {
    let ring: OpaquePointer

    init(capacity: Int) {
        var ring: OpaquePointer?
        let rc = crb_create(capacity, &ring)
        precondition(rc == 0, "crb_create failed: \(rc)")
        self.ring = ring!
    }

    deinit { crb_destroy(ring) }

    func write(type: Int32 = 1, _ bytes: [UInt8]) -> Int32 {
        bytes.withUnsafeBytes { crb_write_mpsc(ring, type, $0.baseAddress, UInt32($0.count)) }
    }

    /// Drains everything committed, returning (type, payload) per record in order.
    func drainAll(maxBytes: Int = .max) -> [(Int32, [UInt8])] {
        let sink = RecordSink()
        let context = Unmanaged.passUnretained(sink).toOpaque()
        while crb_drain(
            ring,
            { run, length, _, context in
                let sink = Unmanaged<RecordSink>.fromOpaque(context!).takeUnretainedValue()
                sink.runs += 1
                var offset = 0
                while offset < length {
                    let record = run! + offset
                    let type = crb_record_type(record)
                    if type != CRB_PADDING_TYPE {
                        let payload = Array(
                            UnsafeBufferPointer(start: record + Int(CRB_HEADER_LENGTH), count: Int(crb_record_length(record))))
                        sink.records.append((type, payload))
                    }
                    offset += Int(crb_record_stride(record))
                }
            }, context, maxBytes) > 0
        {}
        return sink.records
    }
}

final class RecordSink {
    var records: [(Int32, [UInt8])] = []
    var runs = 0
}

func pattern(_ length: Int, seed: Int) -> [UInt8] {
    (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) }
}

@Suite struct RingBufferTests {
    @Test func rejectsCapacitiesThatAreNotPowersOfTwo() {
        var ring: OpaquePointer?
        #expect(crb_create(1000, &ring) == -EINVAL)
        #expect(crb_create(512, &ring) == -EINVAL)
        #expect(crb_create(3 << 20, &ring) == -EINVAL)
        #expect(crb_create(1 << 31, &ring) == -EINVAL)
        #expect(ring == nil)
    }

    @Test func recordsComeOutInOrderWithTheirTypes() {
        let ring = TestRing(capacity: 4096)
        #expect(ring.write(type: 7, [1, 2, 3]) == 0)
        #expect(ring.write(type: 9, []) == 0)
        #expect(ring.write(type: 1, pattern(100, seed: 5)) == 0)
        let records = ring.drainAll()
        #expect(records.map(\.0) == [7, 9, 1])
        #expect(records[0].1 == [1, 2, 3])
        #expect(records[1].1 == [])
        #expect(records[2].1 == pattern(100, seed: 5))
        #expect(crb_size(ring.ring) == 0)
    }

    @Test func nonPositiveTypesAreRejected() {
        let ring = TestRing(capacity: 4096)
        #expect(ring.write(type: 0, [1]) == -EINVAL)
        #expect(ring.write(type: CRB_PADDING_TYPE, [1]) == -EINVAL)
    }

    @Test func aRecordLargerThanTheMaximumIsRejectedWithEMSGSIZE() {
        let ring = TestRing(capacity: 4096)
        let max = Int(crb_max_length(ring.ring))
        #expect(max == 4096 / 8 - 8)
        #expect(ring.write(pattern(max + 1, seed: 0)) == -EMSGSIZE)
        #expect(ring.write(pattern(max, seed: 0)) == 0)
        #expect(ring.drainAll().first?.1.count == max)
    }

    /// Every size from 1 byte to the maximum, enough of each to wrap the ring
    /// several times at every alignment.
    @Test func wrapsAroundWithEveryRecordSize() {
        let ring = TestRing(capacity: 4096)
        let max = Int(crb_max_length(ring.ring))
        var mismatches: [String] = []
        for size in 1...max {
            let total = 3 * 4096 / (size + 8) + 3
            var written = 0
            var read = 0
            func check(_ records: [(Int32, [UInt8])]) {
                for record in records {
                    if record.0 != 3 || record.1 != pattern(size, seed: read) { mismatches.append("size \(size) record \(read)") }
                    read += 1
                }
            }
            while written < total {
                // Fill until full, then drain, so the tail lands everywhere.
                if ring.write(type: 3, pattern(size, seed: written)) == 0 {
                    written += 1
                } else {
                    let got = ring.drainAll()
                    if got.isEmpty {
                        mismatches.append("size \(size): full and nothing to drain")
                        break
                    }
                    check(got)
                }
            }
            check(ring.drainAll())
            if read != written { mismatches.append("size \(size): wrote \(written), read \(read)") }
            if crb_size(ring.ring) != 0 { mismatches.append("size \(size): ring not empty") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test func aFullRingReportsENOSPCAndLosesNothing() {
        let ring = TestRing(capacity: 1024)
        var written = 0
        while ring.write(pattern(56, seed: written)) == 0 { written += 1 }
        #expect(written == 1024 / 64)
        #expect(ring.write([1]) == -ENOSPC)
        let records = ring.drainAll()
        #expect(records.count == written)
        for (i, record) in records.enumerated() { #expect(record.1 == pattern(56, seed: i)) }
        #expect(ring.write([1]) == 0)
    }

    @Test func anUncommittedClaimStopsTheConsumerUntilCommitted() {
        let ring = TestRing(capacity: 4096)
        var claim = crb_claim_t()
        #expect(crb_claim_mpsc(ring.ring, 2, 4, &claim) == 0)
        #expect(ring.write([9]) == 0)
        #expect(ring.drainAll().isEmpty)
        claim.data.update(from: [1, 2, 3, 4], count: 4)
        #expect(crb_commit(ring.ring, &claim) == 0)
        #expect(ring.drainAll().map(\.1) == [[1, 2, 3, 4], [9]])
    }

    @Test func anAbortedClaimIsSkipped() {
        let ring = TestRing(capacity: 4096)
        #expect(ring.write([1]) == 0)
        var claim = crb_claim_t()
        #expect(crb_claim_mpsc(ring.ring, 2, 40, &claim) == 0)
        #expect(ring.write([3]) == 0)
        #expect(crb_abort(ring.ring, &claim) == 0)
        #expect(ring.drainAll().map(\.1) == [[1], [3]])
        #expect(crb_size(ring.ring) == 0)
    }

    /// Producers claim, write slowly (yielding between claim and commit now and then) and
    /// commit or abort, while the consumer drains as fast as it can: every committed record
    /// arrives exactly once and intact, no aborted one arrives, and the ring ends empty. (The
    /// ring once let the consumer take a slow producer's record back; the producer's later
    /// writes then landed in another producer's record, and the consumer read a payload as a
    /// header. A stalled producer now holds the consumer until it commits.)
    @Test func slowProducersThatCommitOrAbortLoseNothingAndCorruptNothing() {
        let producers = 2
        let perProducer = 200_000
        let ring = TestRing(capacity: 1 << 14)
        let done = Counter()
        let aborted = Counter()
        let stop = StressDeadline()
        let threads = (0..<producers).map { producer in
            Thread {
                var gaveUp = 0
                for seq in 0..<perProducer {
                    var claim = crb_claim_t()
                    var rc: Int32
                    repeat { rc = crb_claim_mpsc(ring.ring, Int32(producer + 1), 16, &claim) } while rc == -ENOSPC && !stop.expired
                    if rc != 0 { break }
                    let data = UnsafeMutableRawPointer(claim.data!)
                    data.storeBytes(of: UInt64(producer) << 32 | UInt64(seq), as: UInt64.self)
                    if seq % 64 == 0 { sched_yield() }  // a slow producer now and then
                    data.storeBytes(of: UInt64(seq) &* 0x9E37_79B9, toByteOffset: 8, as: UInt64.self)
                    if seq % 5 == 4 {
                        _ = crb_abort(ring.ring, &claim)
                        gaveUp += 1
                    } else {
                        _ = crb_commit(ring.ring, &claim)
                    }
                }
                aborted.add(gaveUp)
                done.add(1)
            }
        }
        threads.forEach { $0.start() }
        final class Seen {
            var records: [Set<UInt64>] = [[], []]
            var bad = 0
        }
        let seen = Seen()
        let context = Unmanaged.passUnretained(seen).toOpaque()
        while true {
            let finished = done.value == producers
            let n = crb_drain(
                ring.ring,
                { run, length, _, context in
                    let seen = Unmanaged<Seen>.fromOpaque(context!).takeUnretainedValue()
                    var offset = 0
                    while offset < length {
                        let record = run! + offset
                        offset += Int(crb_record_stride(record))
                        let type = crb_record_type(record)
                        if type == CRB_PADDING_TYPE { continue }
                        let payload = UnsafeRawPointer(record + Int(CRB_HEADER_LENGTH))
                        let id = payload.loadUnaligned(as: UInt64.self)
                        let producer = Int(id >> 32), seq = id & 0xFFFF_FFFF
                        if producer >= 2 || type != Int32(producer + 1) || crb_record_length(record) != 16 || seq % 5 == 4
                            || payload.loadUnaligned(fromByteOffset: 8, as: UInt64.self) != seq &* 0x9E37_79B9
                            || !seen.records[producer].insert(seq).inserted
                        {
                            seen.bad += 1
                        }
                    }
                }, context, 1 << 12)
            let empty = finished && crb_size(ring.ring) == 0
            if stop.shouldStop(
                drained: n, finished: empty,
                state: {
                    "\(done.value) of \(producers) producers done, \(crb_size(ring.ring)) bytes in the ring, "
                        + "\(seen.records.map(\.count)) delivered"
                })
            {
                break
            }
        }
        stop.waitForProducers(done, producers)
        #expect(seen.bad == 0)
        let delivered = seen.records.map(\.count).reduce(0, +)
        #expect(delivered + aborted.value == producers * perProducer, "delivered \(delivered), aborted \(aborted.value)")
        #expect(aborted.value == producers * perProducer / 5)
    }

    @Test func drainHandsOutOneContiguousRunBoundedByMaxBytes() {
        let ring = TestRing(capacity: 4096)
        for i in 0..<10 { #expect(ring.write(pattern(24, seed: i)) == 0) }
        let sink = RecordSink()
        let context = Unmanaged.passUnretained(sink).toOpaque()
        let n = crb_drain(
            ring.ring,
            { _, length, records, context in
                let sink = Unmanaged<RecordSink>.fromOpaque(context!).takeUnretainedValue()
                sink.runs += 1
                #expect(length == Int(records) * 32)
            }, context, 100)
        #expect(n == 3)  // 3 × 32 bytes fit in 100
        #expect(sink.runs == 1)
        #expect(ring.drainAll().count == 7)
    }

    /// 4 producers, each writes `count` records of varying size carrying (producer, sequence);
    /// the consumer checks every record arrives exactly once and in order per producer.
    @Test func manyProducersEveryRecordArrivesExactlyOnceInOrder() {
        let producers = 4
        let perProducer = Int(ProcessInfo.processInfo.environment["SPILLWAY_RING_STRESS_RECORDS"] ?? "") ?? 1_000_000
        let ring = TestRing(capacity: 1 << 16)
        let done = Counter()
        let fullCount = Counter()
        let stop = StressDeadline()

        let threads = (0..<producers).map { producer in
            Thread {
                var record = [UInt8](repeating: 0, count: 200)
                for seq in 0..<perProducer {
                    let size = 16 + (seq % 23) * 8 + (seq % 7)
                    record.withUnsafeMutableBytes { bytes in
                        bytes.storeBytes(of: UInt32(producer), toByteOffset: 0, as: UInt32.self)
                        bytes.storeBytes(of: UInt64(seq), toByteOffset: 4, as: UInt64.self)
                        bytes[12] = UInt8(truncatingIfNeeded: seq &* 7 &+ producer)
                        bytes[size - 1] = UInt8(truncatingIfNeeded: seq)
                    }
                    while record.withUnsafeBytes({ crb_write_mpsc(ring.ring, Int32(producer + 1), $0.baseAddress, UInt32(size)) })
                        == -ENOSPC
                    {
                        fullCount.add(1)
                        if stop.expired { break }
                        sched_yield()
                    }
                }
                done.add(1)
            }
        }
        threads.forEach { $0.start() }

        final class Check {
            var next: [UInt64]
            var bad = 0
            var total = 0
            init(_ n: Int) { next = .init(repeating: 0, count: n) }
        }
        let check = Check(producers)
        let context = Unmanaged.passUnretained(check).toOpaque()
        while true {
            let finished = done.value == producers
            let n = crb_drain(
                ring.ring,
                { run, length, _, context in
                    let check = Unmanaged<Check>.fromOpaque(context!).takeUnretainedValue()
                    var offset = 0
                    while offset < length {
                        let record = run! + offset
                        offset += Int(crb_record_stride(record))
                        let type = crb_record_type(record)
                        if type == CRB_PADDING_TYPE { continue }
                        let payload = UnsafeRawPointer(record + Int(CRB_HEADER_LENGTH))
                        let size = Int(crb_record_length(record))
                        let producer = Int(payload.loadUnaligned(as: UInt32.self))
                        let seq = payload.loadUnaligned(fromByteOffset: 4, as: UInt64.self)
                        let expectedSize = 16 + (Int(seq) % 23) * 8 + (Int(seq) % 7)
                        if type != Int32(producer + 1) || seq != check.next[producer] || size != expectedSize
                            || payload.load(fromByteOffset: 12, as: UInt8.self) != UInt8(truncatingIfNeeded: Int(seq) &* 7 &+ producer)
                            || payload.load(fromByteOffset: size - 1, as: UInt8.self) != UInt8(truncatingIfNeeded: seq)
                        {
                            check.bad += 1
                        }
                        check.next[producer] = seq + 1
                        check.total += 1
                    }
                }, context, 1 << 14)
            if stop.shouldStop(
                drained: n, finished: finished,
                state: {
                    "\(done.value) of \(producers) producers done, \(check.total) records read, \(crb_size(ring.ring)) bytes in the ring"
                })
            {
                break
            }
        }
        stop.waitForProducers(done, producers)
        #expect(check.bad == 0)
        #expect(check.total == producers * perProducer)
        #expect(check.next == Array(repeating: UInt64(perProducer), count: producers))
        #expect(crb_size(ring.ring) == 0)
    }
}

/// The deadline of a stress test's spin loops: the consumer calls `check()` when a drain found
/// nothing; if nothing was found for `limit`, the test fails with what it saw instead of spinning
/// until the step's timeout, and the producers' `-ENOSPC` loops see `expired` and stop.
final class StressDeadline: @unchecked Sendable {
    static let limit = Duration.seconds(120)
    private let flag = Counter()
    private var idleSince: ContinuousClock.Instant?

    var expired: Bool { flag.value != 0 }

    /// Called by the consumer after an empty drain; true (and `expired` for the producers) once
    /// drains have come back empty for `limit`. A non-empty drain in between restarts the clock
    /// via `progress()`.
    func check() -> Bool {
        let now = ContinuousClock.now
        guard let since = idleSince else {
            idleSince = now
            return false
        }
        if now - since > Self.limit {
            flag.add(1)
            return true
        }
        return false
    }

    func progress() { idleSince = nil }

    /// The consumer loop's step after a drain of `drained` records: true when the loop ends —
    /// `finished` (the producers are done and nothing is left), or no progress for `limit` (the
    /// test then fails with `state()`); otherwise yields after an empty drain.
    func shouldStop(drained: UInt32, finished: Bool, state: () -> String) -> Bool {
        if drained > 0 {
            progress()
            return false
        }
        if finished { return true }
        if check() {
            Issue.record(Comment(rawValue: "no progress for \(Self.limit): \(state())"))
            return true
        }
        sched_yield()
        return false
    }

    /// After the consumer stopped, waits (bounded) for the producers so the ring outlives them.
    func waitForProducers(_ done: Counter, _ producers: Int) {
        let end = ContinuousClock.now + .seconds(30)
        while done.value < producers && ContinuousClock.now < end { usleep(1000) }
    }
}

final class Counter: @unchecked Sendable {
    private let storage = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    private let lock = NSLock()
    init() { storage.initialize(to: 0) }
    deinit { storage.deallocate() }
    func add(_ n: Int) {
        lock.lock()
        storage.pointee += n
        lock.unlock()
    }
    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return storage.pointee
    }
}

/// Proves that the ThreadSanitizer step of `make test` can fail: this test races on purpose
/// and runs only when `SPILLWAY_TSAN_SELFTEST=1` (the `tsan-selftest` make target expects it to fail).
@Suite struct ThreadSanitizerSelfTest {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SPILLWAY_TSAN_SELFTEST"] == "1"))
    func anUnsynchronizedCounterIsReported() {
        final class Unguarded: @unchecked Sendable { var value = 0 }
        let shared = Unguarded()
        let threads = (0..<2).map { _ in Thread { for _ in 0..<10_000 { shared.value += 1 } } }
        threads.forEach { $0.start() }
        while !threads.allSatisfy(\.isFinished) { usleep(1000) }
        #expect(shared.value > 0)
    }
}
