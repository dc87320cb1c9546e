import CSpill
import Glibc
import Testing

/// The pieces of CSpill the spine needs: CRC32C, the io_uring probe, the linked zstd.
@Suite struct CSpillTests {
    @Test func crc32cMatchesTheCastagnoliCheckValue() {
        let input = Array("123456789".utf8)
        #expect(csp_crc32c(0, input, input.count) == 0xE306_9283)
        #expect(csp_crc32c(0, nil, 0) == 0)
    }

    @Test func crc32cCanBeComputedInPieces() {
        let input = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let whole = csp_crc32c(0, input, input.count)
        let first = input.withUnsafeBufferPointer { csp_crc32c(0, $0.baseAddress, 333) }
        let both = input.withUnsafeBufferPointer { csp_crc32c(first, $0.baseAddress! + 333, 667) }
        #expect(both == whole)
    }

    @Test func theIoUringProbeSucceedsOrNamesWhyNot() {
        let rc = csp_uring_probe()
        #expect(rc == 0 || rc == -ENOSYS || rc == -EPERM || rc == -ENOMEM, "io_uring_queue_init returned \(rc)")
    }

    @Test func zstdIsLinked() {
        #expect(csp_zstd_version() >= 10_400)
    }
}
