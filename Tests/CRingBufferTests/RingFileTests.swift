import CRingBuffer
import Foundation
import Testing

/// A ring file in a fresh directory, opened (and reopened) with crb_open_file.
final class TestRingFile {
    let directory: String
    var path: String { directory + "/ring" }
    static let boot: [UInt8] = Array(repeating: 7, count: 16)

    init() {
        directory = NSTemporaryDirectory() + "ring-file-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// What a process that dies leaves: records 0..<count written (one byte each), nothing released.
    func leave(_ count: Int) {
        let ring = open().ring!
        for i in 0..<count { _ = ring.write([UInt8(i)]) }
        ring.crash()
    }

    /// Opens the file; returns the rc, the ring (nil on failure) and what recovery found, with
    /// each record type the recovery callback saw (committed or not).
    func open(capacity: Int = 4096, boot: [UInt8] = TestRingFile.boot) -> (
        rc: Int32, ring: OpenRing?, recovery: crb_recovery_t, seen: [(Int32, Bool)]
    ) {
        let fd = Foundation.open(path, O_RDWR | O_CREAT, 0o600)
        precondition(fd >= 0)
        var recovery = crb_recovery_t()
        var ring: OpaquePointer?
        let seen = SeenTypes()
        let rc = boot.withUnsafeBufferPointer { id in
            crb_open_file(
                fd, capacity, id.baseAddress,
                { type, committed, _, _, context in
                    Unmanaged<SeenTypes>.fromOpaque(context!).takeUnretainedValue().types.append((type, committed != 0))
                    return type
                }, Unmanaged.passUnretained(seen).toOpaque(), &recovery, &ring)
        }
        guard rc == 0, let ring else {
            close(fd)
            return (rc, nil, recovery, seen.types)
        }
        return (rc, OpenRing(ring: ring, fd: fd), recovery, seen.types)
    }
}

final class SeenTypes { var types: [(Int32, Bool)] = [] }

/// A mapped ring file; `crash()` unmaps it as a dying process would (nothing released, nothing cleaned).
final class OpenRing {
    let ring: OpaquePointer
    let fd: Int32
    private var open = true

    init(ring: OpaquePointer, fd: Int32) {
        self.ring = ring
        self.fd = fd
    }

    func write(type: Int32 = 1, _ bytes: [UInt8]) -> Int32 {
        bytes.withUnsafeBytes { crb_write_mpsc(ring, type, $0.baseAddress, UInt32($0.count)) }
    }

    /// Drains everything committed (without releasing), returning the payloads' first bytes.
    func drain() -> [UInt8] {
        let sink = RecordSink()
        while crb_drain(
            ring,
            { run, length, _, context in
                let sink = Unmanaged<RecordSink>.fromOpaque(context!).takeUnretainedValue()
                var offset = 0
                while offset < length {
                    let record = run! + offset
                    if crb_record_type(record) != CRB_PADDING_TYPE {
                        sink.records.append((crb_record_type(record), [record[Int(CRB_HEADER_LENGTH)]]))
                    }
                    offset += Int(crb_record_stride(record))
                }
            }, Unmanaged.passUnretained(sink).toOpaque(), .max) > 0
        {}
        return sink.records.map { $0.1[0] }
    }

    func crash() {
        guard open else { return }
        open = false
        crb_destroy(ring)
        close(fd)
    }

    deinit { crash() }
}

@Suite struct RingFileTests {
    @Test func aNewFileIsARingThatKeepsWhatWasReadUntilReleased() {
        let file = TestRingFile()
        let (rc, ring, recovery, _) = file.open(capacity: 4096)
        #expect(rc == 0 && recovery.created == 1 && recovery.generation == 1)
        guard let ring else { return }
        let attrs = try? FileManager.default.attributesOfItem(atPath: file.path)
        #expect((attrs?[.size] as? Int) == Int(CRB_HEADER_PAGE) + 4096)
        // 4096 bytes hold 16 records of 248 + 8 bytes, exactly; reading them frees nothing.
        var written = 0
        while ring.write([UInt8](repeating: UInt8(written), count: 248)) == 0 { written += 1 }
        #expect(written == 16)
        #expect(ring.drain() == (0..<16).map { UInt8($0) })
        // Read up to head + capacity: the next header there is the oldest record, unreleased, not a
        // new one (a user's outage run read the whole ring a second time before this was found).
        #expect(ring.drain().isEmpty)
        #expect(ring.write([1]) == -ENOSPC, "read, not released: the space is still held")
        crb_release(ring.ring, crb_read_position(ring.ring))
        #expect(crb_size(ring.ring) == 0)
        #expect(ring.write([UInt8](repeating: 1, count: 256)) == 0)
    }

    @Test func aCrashLeavesEveryCommittedRecordForTheNextOpenInOrder() {
        let file = TestRingFile()
        do {
            let ring = file.open().ring!
            for i in 0..<10 { #expect(ring.write(type: 3, [UInt8(i)]) == 0) }
            // Records 0-3 were delivered (released), 4-6 read and in flight, 7-9 never read.
            _ = ring.drain()
            crb_release(ring.ring, crb_read_position(ring.ring))
            for i in 10..<13 { #expect(ring.write(type: 3, [UInt8(i)]) == 0) }
            ring.crash()
        }
        let (rc, ring, recovery, seen) = file.open()
        #expect(rc == 0 && recovery.created == 0 && recovery.generation == 2)
        #expect(recovery.committed == 3 && recovery.uncommitted == 0 && recovery.skipped_bytes == 0)
        #expect(seen.allSatisfy { $0.0 == 3 && $0.1 })
        #expect(ring?.drain() == [10, 11, 12])
    }

    @Test func readButUnreleasedRecordsComeBackAfterACrash() {
        let file = TestRingFile()
        do {
            let ring = file.open().ring!
            for i in 0..<5 { _ = ring.write([UInt8(i)]) }
            #expect(ring.drain() == [0, 1, 2, 3, 4])
            crb_release(ring.ring, crb_read_position(ring.ring) - 48)  // 0-1 delivered (16 bytes each); 2-4 still in flight
            ring.crash()
        }
        let (_, ring, recovery, _) = file.open()
        #expect(recovery.committed == 3)
        #expect(ring?.drain() == [2, 3, 4])
    }

    /// A producer process killed with SIGKILL between claim and commit: its record is skipped and
    /// counted; the records committed before and after it are all recovered.
    @Test func aProducerKilledBetweenClaimAndCommitLosesOnlyItsRecord() throws {
        let file = TestRingFile()
        // Opened before the fork, so the child makes C calls only (no allocation after a fork).
        let ring = try #require(file.open().ring)
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: 2, alignment: 1)
        defer { bytes.deallocate() }
        bytes.storeBytes(of: 1, toByteOffset: 0, as: UInt8.self)
        bytes.storeBytes(of: 3, toByteOffset: 1, as: UInt8.self)
        let child = fork()
        if child == 0 {
            _ = crb_write_mpsc(ring.ring, 1, bytes, 1)
            var claim = crb_claim_t()
            guard crb_claim_mpsc(ring.ring, 2, 100, &claim) == 0 else { _exit(3) }
            claim.data[0] = 99  // half written
            _ = crb_write_mpsc(ring.ring, 1, bytes + 1, 1)
            kill(getpid(), SIGKILL)
            _exit(4)
        }
        var status: Int32 = 0
        waitpid(child, &status, 0)
        #expect(status & 0x7f == SIGKILL, "the child died of SIGKILL")
        ring.crash()
        let (rc, reopened, recovery, seen) = file.open()
        #expect(rc == 0 && recovery.committed == 2 && recovery.uncommitted == 1)
        #expect(seen.map(\.0) == [1, 2, 1] && seen.map(\.1) == [true, false, true])
        #expect(reopened?.drain() == [1, 3])
    }

    @Test func aClaimWhoseHeaderWasNeverWrittenSkipsToTheTailAndCountsTheBytes() throws {
        let file = TestRingFile()
        file.leave(4)
        // Zero the third record's header: as if its producer died right after moving the tail.
        let handle = try #require(FileHandle(forUpdatingAtPath: file.path))
        try handle.seek(toOffset: UInt64(CRB_HEADER_PAGE) + 32)
        handle.write(Data(count: 8))
        try handle.close()
        let (rc, ring, recovery, _) = file.open()
        #expect(rc == 0 && recovery.committed == 2 && recovery.skipped_bytes == 32)
        #expect(ring?.drain() == [0, 1])
        #expect(ring?.write([9]) == 0)
        #expect(ring?.drain() == [9])
    }

    @Test(arguments: ["truncated", "zeroed", "foreign", "bad cursors", "bad record"])
    func aFileThatDoesNotCheckOutIsRefusedAndLeftAsItWas(_ damage: String) throws {
        let file = TestRingFile()
        file.leave(4)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file.path))
        switch damage {
        case "truncated": bytes = bytes.prefix(bytes.count - 100)
        case "zeroed": bytes = Data(count: bytes.count)
        case "foreign": bytes = Data("name,value\nalpha,1\n".utf8)
        case "bad cursors": bytes.replaceSubrange(128..<136, with: Data(repeating: 0xff, count: 8))  // tail far beyond the head
        default: bytes.replaceSubrange(Int(CRB_HEADER_PAGE)..<Int(CRB_HEADER_PAGE) + 4, with: Data([0, 0, 0, 0x40]))  // a huge length
        }
        try bytes.write(to: URL(fileURLWithPath: file.path))
        let (rc, ring, _, _) = file.open()
        #expect(rc == -EBADMSG && ring == nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: file.path)) == bytes, "nothing changed")
    }

    @Test func aFileFromAnotherBootIsRefusedAsStale() {
        let file = TestRingFile()
        file.leave(1)
        #expect(file.open(boot: Array(repeating: 8, count: 16)).rc == -ESTALE)
        #expect(file.open().recovery.committed == 1)
    }

    @Test func anotherCapacityIsTheFilesOwnUntilTheFileIsGone() {
        let file = TestRingFile()
        do {
            let ring = file.open(capacity: 4096).ring!
            _ = ring.write([1])
            ring.crash()
        }
        let (_, ring, recovery, _) = file.open(capacity: 8192)
        #expect(recovery.committed == 1 && crb_capacity(ring!.ring) == 4096)
    }
}

extension RingFileTests {
    /// After a reboot only what crb_sync made durable is read: records committed after the last
    /// sync are counted as skipped bytes, never read (their pages may not have reached the disk).
    @Test func afterARebootOnlyWhatWasSyncedIsRead() {
        let file = TestRingFile()
        do {
            let ring = file.open().ring!
            for i in 0..<3 { _ = ring.write([UInt8(i)]) }
            var (from, to): (UInt64, UInt64) = (0, 0)
            #expect(crb_sync(ring.ring, &from, &to) == 0 && from == 0 && to == 48)
            for i in 3..<5 { _ = ring.write([UInt8(i)]) }
            ring.crash()
        }
        let (rc, ring, recovery, _) = file.open(boot: Array(repeating: 9, count: 16))
        #expect(rc == 0 && recovery.after_reboot == 1 && recovery.committed == 3 && recovery.skipped_bytes == 32)
        #expect(ring?.drain() == [0, 1, 2])
        ring?.crash()
        // Nothing synced: refused as stale.
        let other = TestRingFile()
        other.leave(1)
        #expect(other.open(boot: Array(repeating: 9, count: 16)).rc == -ESTALE)
    }

    /// A claim that died before its header was written leaves zeros (its payload was never
    /// written either): recovery skips them and finds the records after it.
    @Test func aDeadClaimsZerosAreSkippedAndTheRecordsAfterItRecovered() throws {
        let file = TestRingFile()
        file.leave(4)
        let handle = try #require(FileHandle(forUpdatingAtPath: file.path))
        try handle.seek(toOffset: UInt64(CRB_HEADER_PAGE) + 16)
        handle.write(Data(count: 16))  // record 1, header and payload
        try handle.close()
        let (rc, ring, recovery, _) = file.open()
        #expect(rc == 0 && recovery.committed == 3 && recovery.skipped_bytes == 16)
        #expect(ring?.drain() == [0, 2, 3])
    }

    /// Producers leave the reserve free (a file ring's relocations free a ring full of batches in
    /// retry, so they must fit when producers' records no longer do); a reserved claim may use it,
    /// also where the padding of a wrap counts; the reserve is at most half the ring.
    @Test func producersLeaveTheReserveToReservedClaims() {
        let ring = TestRing(capacity: 1024)
        crb_set_reserve(ring.ring, 256)
        var written = 0
        while ring.write(pattern(56, seed: written)) == 0 { written += 1 }
        #expect(written == (1024 - 256) / 64 && crb_size(ring.ring) == 1024 - 256)
        var claim = crb_claim_t()
        for _ in 0..<4 {
            #expect(crb_claim_reserved(ring.ring, 2, 56, &claim) == 0)
            crb_commit(ring.ring, &claim)
        }
        #expect(crb_claim_reserved(ring.ring, 2, 56, &claim) == -ENOSPC)
        let records = ring.drainAll()
        #expect(records.count == 16 && records.suffix(4).allSatisfy { $0.0 == 2 })

        // Head and tail at index 304, then 624 bytes in use (tail at 928): a 120-byte record would
        // wrap, and its 96 bytes of padding with it would eat into the reserve, so producers are
        // refused; a reserved claim takes it (the claim's padding counts against the reserve).
        for i in 0..<4 { #expect(ring.write(pattern(56, seed: i)) == 0) }
        #expect(ring.write(pattern(40, seed: 4)) == 0)
        #expect(ring.drainAll().count == 5)
        for i in 0..<5 { #expect(ring.write(pattern(112, seed: i)) == 0) }
        #expect(ring.write(pattern(16, seed: 5)) == 0)
        #expect(crb_size(ring.ring) == 624)
        #expect(ring.write(pattern(112, seed: 6)) == -ENOSPC)
        #expect(crb_claim_reserved(ring.ring, 2, 112, &claim) == 0)
        crb_commit(ring.ring, &claim)
        #expect(crb_size(ring.ring) == 624 + 96 + 120)
        #expect(ring.drainAll().map(\.1.count) == [112, 112, 112, 112, 112, 16, 112])

        crb_set_reserve(ring.ring, 1 << 20)
        written = 0
        while ring.write(pattern(56, seed: written)) == 0 { written += 1 }
        #expect(written == 512 / 64, "the reserve is at most half the ring")
    }
}
