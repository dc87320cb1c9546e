import ArgumentParser
import CSpill
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The writer half of the crash test: appends frames with `always` durability and prints one line
/// per frame once `csp_writer_append` returned it durable, so a parent that kills this process
/// at a random moment knows which frames must survive. Hidden: a test tool, not a user command.
struct SpillChild: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "spill-child", shouldDisplay: false)

    @Option var dir: String
    @Option var frames = 1_000_000
    @Option var io = "auto"

    func run() throws {
        var writer: OpaquePointer?
        let mode = io == "pwrite" ? Int32(CSP_IO_PWRITE) : Int32(CSP_IO_AUTO)
        let rc = dir.withCString { path -> Int32 in
            var options = csp_writer_options_t(
                directory: path, signal: UInt16(CSP_SIGNAL_LOGS), segment_sequence: 1, max_segment_bytes: 256 << 10,
                max_segment_age_ns: 0, durability: Int32(CSP_DURABILITY_ALWAYS), sync_interval_ns: 0, io: mode, zstd_level: 1, flags: 0)
            return csp_writer_open(&options, &writer)
        }
        guard rc == 0 else { throw ValidationError("csp_writer_open: \(rc)") }
        for i in 0..<frames {
            // A payload that names its own sequence, so the parent can check each survivor's content.
            var payload = Array("frame \(i) ".utf8)
            payload += [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 200 + (i * 37) % 3000)
            var info = csp_frame_info_t()
            let rc = payload.withUnsafeBytes { csp_writer_append(writer, $0.baseAddress, UInt32($0.count), 1, UInt64(i), &info) }
            guard rc == 0, info.durable == 1 else { throw ValidationError("append \(i): \(rc)") }
            // Unbuffered: the line is out before the next frame starts, whenever the kill comes.
            let line = Array("durable \(i) \(info.segment_sequence) \(info.offset)\n".utf8)
            _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }
        _ = csp_writer_close(writer)
    }
}
