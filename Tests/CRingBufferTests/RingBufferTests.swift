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

    @Test func unblockFreesARecordWhoseProducerDiedAfterWritingTheHeader() {
        let ring = TestRing(capacity: 4096)
        var claim = crb_claim_t()
        #expect(crb_claim_mpsc(ring.ring, 2, 16, &claim) == 0)  // never committed
        #expect(ring.write([7]) == 0)
        #expect(ring.drainAll().isEmpty)
        #expect(crb_unblock(ring.ring) == 1)
        #expect(ring.drainAll().map(\.1) == [[7]])
        #expect(crb_unblock(ring.ring) == 0)
    }

    /// The interleaving Agrona's unblock loses: the consumer takes a stuck record while its
    /// (slow, not dead) producer commits. The producer must learn it; nothing is skipped unseen.
    @Test func aProducerWhoseRecordUnblockTookLearnsItAtCommit() {
        let ring = TestRing(capacity: 4096)
        var claim = crb_claim_t()
        #expect(crb_claim_mpsc(ring.ring, 2, 16, &claim) == 0)
        #expect(ring.write([7]) == 0)
        #expect(crb_unblock(ring.ring) == 1)
        claim.data.update(repeating: 0xAB, count: 16)
        #expect(crb_commit(ring.ring, &claim) == -ETIMEDOUT, "the record was taken: the caller counts it as lost")
        #expect(ring.drainAll().map(\.1) == [[7]])
        // The other order: committed first, so unblock finds nothing stuck and the record keeps its type.
        #expect(crb_claim_mpsc(ring.ring, 3, 4, &claim) == 0)
        claim.data.update(from: [1, 2, 3, 4], count: 4)
        #expect(crb_commit(ring.ring, &claim) == 0)
        #expect(crb_unblock(ring.ring) == 0)
        #expect(ring.drainAll().map { "\($0.0) \($0.1)" } == ["3 [1, 2, 3, 4]"])
    }

    @Test func aProducerWhoseGapUnblockTookLearnsItWhenItWritesItsHeader() {
        let ring = TestRing(capacity: 4096)
        var claim = crb_claim_t()
        #expect(crb_claim_mpsc(ring.ring, 2, 16, &claim) == 0)
        // As if the producer stalled between the tail CAS and the header store: the header is 0.
        let header = UnsafeMutableRawPointer(claim.data - 8)
        header.storeBytes(of: 0, as: UInt64.self)
        #expect(ring.write([5]) == 0)
        #expect(crb_unblock(ring.ring) == 1)
        // The stalled producer's header compare-and-swap (0 → -length) now fails; its commit too.
        #expect(header.load(as: Int32.self) > 0, "padding now")
        #expect(crb_commit(ring.ring, &claim) == -ETIMEDOUT)
        #expect(ring.drainAll().map(\.1) == [[5]])
    }

    /// Producers commit while the consumer calls unblock as often as it can (far more eagerly
    /// than the pipeline's 5 s): every record is delivered exactly once, or its producer was
    /// told it was taken. With the old unblock (padding type first, then the length), records
    /// committed in between vanished without a word.
    @Test func unblockRacingLiveProducersLosesNothingSilently() {
        let producers = 2
        let perProducer = 200_000
        let ring = TestRing(capacity: 1 << 14)
        let done = Counter()
        let refused = Counter()
        let threads = (0..<producers).map { producer in
            Thread {
                var timeouts = 0
                for seq in 0..<perProducer {
                    var claim = crb_claim_t()
                    var rc: Int32
                    repeat { rc = crb_claim_mpsc(ring.ring, Int32(producer + 1), 16, &claim) } while rc == -ENOSPC
                    if rc == -ETIMEDOUT {
                        timeouts += 1
                        continue
                    }
                    let data = UnsafeMutableRawPointer(claim.data!)
                    data.storeBytes(of: UInt64(producer) << 32 | UInt64(seq), as: UInt64.self)
                    data.storeBytes(of: UInt64(seq) &* 0x9E37_79B9, toByteOffset: 8, as: UInt64.self)
                    if seq % 64 == 0 { sched_yield() }  // a slow producer now and then
                    if crb_commit(ring.ring, &claim) == -ETIMEDOUT { timeouts += 1 }
                }
                refused.add(timeouts)
                done.add(1)
            }
        }
        threads.forEach { $0.start() }
        final class Seen {
            var records: [Set<UInt64>] = [[], []]
            var bad = 0
            var unblocked = 0
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
                        if type != Int32(producer + 1) || payload.loadUnaligned(fromByteOffset: 8, as: UInt64.self) != seq &* 0x9E37_79B9
                            || !seen.records[producer].insert(seq).inserted
                        {
                            seen.bad += 1
                        }
                    }
                }, context, 1 << 12)
            if n == 0 {
                if finished && crb_size(ring.ring) == 0 { break }
                if crb_unblock(ring.ring) == 1 { seen.unblocked += 1 }
            }
        }
        #expect(seen.bad == 0)
        let delivered = seen.records.map(\.count).reduce(0, +)
        #expect(
            delivered + refused.value == producers * perProducer,
            "delivered \(delivered), told \(refused.value), unblocked \(seen.unblocked)")
        #expect(seen.unblocked > 0, "the race was exercised")
    }

    @Test func unblockFreesTheGapOfAProducerThatDiedBeforeWritingTheHeader() {
        let ring = TestRing(capacity: 4096)
        var claim = crb_claim_t()
        #expect(crb_claim_mpsc(ring.ring, 2, 16, &claim) == 0)
        // Simulate a death between the tail CAS and the header store.
        UnsafeMutableRawPointer(claim.data - 8).storeBytes(of: 0, as: UInt64.self)
        #expect(ring.write([5, 6]) == 0)
        #expect(ring.drainAll().isEmpty)
        #expect(crb_unblock(ring.ring) == 1)
        #expect(ring.drainAll().map(\.1) == [[5, 6]])
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
            if n == 0 {
                if finished { break }
                sched_yield()
            }
        }
        #expect(check.bad == 0)
        #expect(check.total == producers * perProducer)
        #expect(check.next == Array(repeating: UInt64(perProducer), count: producers))
        #expect(crb_size(ring.ring) == 0)
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
