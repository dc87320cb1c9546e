import ArgumentParser
import Resilience

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The writer half of the crash test: appends frames with `always` durability and prints one line
/// per frame once the library's `SegmentWriter` returned it durable, so a parent that kills this process
/// at a random moment knows which frames must survive. Hidden: a test tool, not a user command.
struct SpillChild: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "spill-child", shouldDisplay: false)

    @Option var dir: String
    @Option var frames = 1_000_000
    @Option var io = "auto"

    func run() throws {
        let configuration = SpillConfiguration(
            directory: dir, durability: .always, maxSegmentBytes: 256 << 10, io: io == "pwrite" ? .pwrite : .automatic)
        let writer: SegmentWriter
        do {
            writer = try SegmentWriter(directory: dir, signal: .logs, firstSegment: 1, configuration: configuration)
        } catch {
            throw ValidationError("open a segment writer in \(dir): \(error.message)")
        }
        for i in 0..<frames {
            // A payload that names its own sequence, so the parent can check each survivor's content.
            var payload = Array("frame \(i) ".utf8)
            payload += [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 200 + (i * 37) % 3000)
            let placement: SegmentWriter.Placement
            do {
                placement = try writer.append(payload, records: 1, batchSequence: UInt64(i))
            } catch {
                throw ValidationError("append \(i): \(error.message)")
            }
            guard placement.durable else { throw ValidationError("append \(i): returned before the frame was durable") }
            // Unbuffered: the line is out before the next frame starts, whenever the kill comes.
            let line = Array("durable \(i) \(placement.segment) \(placement.offset)\n".utf8)
            _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }
    }
}
