import ArgumentParser
import Foundation
import Resilience

// The file tools read segments through the library's SegmentReader: the same code the pipeline
// replays with. They never modify a file, except `replay`, which deletes a segment only once
// every record in it was acknowledged by a collector.

/// What one pass over a segment found.
struct SegmentSummary {
    var frames = 0
    var records = 0
    var raw = 0
    var compressed = 0
    var damage: [SegmentReader.Damage] = []
    var header: SegmentReader?

    /// Records lost in damage, and whether some damage had an unknown count.
    var lost: (known: Int, unknown: Int) {
        damage.reduce((0, 0)) { ($0.0 + ($1.records ?? 0), $0.1 + ($1.records == nil ? 1 : 0)) }
    }

    static func read(_ location: SegmentLocation, decompress: Bool) -> SegmentSummary {
        var summary = SegmentSummary()
        guard let reader = try? SegmentReader(path: location.path, headersOnly: !decompress) else { return summary }
        summary.header = reader
        while let entry = reader.next() {
            switch entry {
            case .frame(let frame):
                summary.frames += 1
                summary.records += frame.records
                summary.raw += frame.body.count
                summary.compressed += frame.compressedLength
            case .damaged(let damage):
                summary.damage.append(damage)
            }
        }
        return summary
    }
}

/// "512 records", "an unknown number of records".
func describeLost(_ records: Int?) -> String { records.map { "\(grouped($0)) records" } ?? "an unknown number of records" }

/// The state of a segment for `inspect`: open (being written / left by a crash), sealed,
/// partly replayed, or quarantined.
func state(of location: SegmentLocation) -> String {
    if location.isQuarantined { return "quarantined" }
    if location.isOpen {
        let lock = location.spillDirectory.map { SpillDirectoryLock.isHeld(spillDirectory: $0) }
        if let lock, lock.held { return "open (being written by process \(lock.holder.map(String.init) ?? "?"))" }
        return "open (left by a crash: recovered at the next start or by replay)"
    }
    let progress = SegmentProgress.read(location.progressPath)
    return progress.entries > 0 ? "replaying (\(grouped(progress.records)) records done)" : "sealed"
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the segments of a spill directory: area, signal, state, records, damage.",
        discussion: "Reads every area (spilled, rejected, refused). Exit status: 0, or 1 when a path is not a spill segment or directory.")

    @Argument(help: "Spill directories, signal directories, or segment files.") var paths: [String]

    func run() throws {
        let found: SpillPaths
        do { found = try SpillPaths.resolve(paths, areas: Set(SpillArea.allCases), destinations: true) } catch {
            printError("inspect: \(error)")
            throw ExitCode(1)
        }
        var total = (segments: 0, frames: 0, records: 0, raw: 0, compressed: 0, damaged: 0)
        // Wide enough for the longest name (a destination's part adds `destinations/<name>/`).
        let width = max(44, found.segments.map(\.displayName.count).max() ?? 0)
        print(
            "segment".padding(toLength: width, withPad: " ", startingAt: 0)
                + " area      signal   frames    records          raw   compressed  created              state")
        var notes: [String] = []
        for location in found.segments {
            let summary = SegmentSummary.read(location, decompress: true)
            guard let header = summary.header else { continue }
            let created = Date(timeIntervalSince1970: Double(header.createdNanos) / 1e9)
            let stamp = ISO8601DateFormatter().string(from: created)
            print(
                location.displayName.padding(toLength: width, withPad: " ", startingAt: 0)
                    + " \(location.area.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) "
                    + "\(header.signal.description.padding(toLength: 7, withPad: " ", startingAt: 0))"
                    + String(format: " %7d %10d %12d %12d", summary.frames, summary.records, summary.raw, summary.compressed)
                    + "  \(stamp)  \(state(of: location))")
            if let signal = location.signalFromPath, signal != header.signal {
                notes.append("\(location.path): in a \(signal) directory, but its header says \(header.signal) (the header wins)")
            }
            for damage in summary.damage {
                let what = damage.isTornTail && location.isOpen ? "torn tail (recovery cuts it)" : damage.reason
                notes.append(
                    "\(location.path)@\(damage.offset): \(what), \(grouped(Int(damage.length))) bytes, \(describeLost(damage.records)) lost"
                )
            }
            if location.isQuarantined {
                notes.append(
                    "\(location.path): quarantined: replay delivered its intact frames and kept it for its "
                        + "\(summary.damage.count) damaged stretches"
                )
            }
            if let answers = SpillLayout.read(location.rejectionsPath), location.area != .spilled {
                let lines = answers.split(separator: "\n")
                if let last = lines.last { notes.append("\(location.path): \(lines.count) refused requests; the last answer: \(last)") }
            }
            total.segments += 1
            total.frames += summary.frames
            total.records += summary.records
            total.raw += summary.raw
            total.compressed += summary.compressed
            total.damaged += summary.damage.count
        }
        for (path, reason) in found.foreign { notes.append("\(path): \(reason); left alone") }
        for note in notes { print(note) }
        let ratio = total.compressed > 0 ? String(format: "%.1f", Double(total.raw) / Double(total.compressed)) : "-"
        print(
            "total: \(total.segments) segments, \(grouped(total.frames)) frames, \(grouped(total.records)) records, "
                + "\(grouped(total.raw)) bytes raw, \(grouped(total.compressed)) compressed (\(ratio)×), \(total.damaged) damaged"
        )
        for line in leftBehind(in: found.spillDirectories) { print(line) }
        if !found.foreign.isEmpty { throw ExitCode(1) }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every frame of spill segments; exit 1 on any damage.",
        discussion:
            "Damage, quarantined segments (.damaged), records counts that disagree with the request, and files that are not "
            + "segments are problems. A torn tail of an .open segment is noted, not a problem: recovery cuts it."
    )

    @Argument(help: "Spill directories, signal directories, or segment files.") var paths: [String]

    func run() throws {
        let found: SpillPaths
        do { found = try SpillPaths.resolve(paths, areas: Set(SpillArea.allCases), destinations: true) } catch {
            printError("verify: \(error)")
            throw ExitCode(1)
        }
        var problems = 0, frames = 0, records = 0
        for location in found.segments {
            guard let cursor = try? SegmentCursor(path: location.path) else { continue }
            if let signal = location.signalFromPath, signal != cursor.reader.signal {
                print(
                    "\(location.path): in a \(signal) directory, but its header says \(cursor.reader.signal) (a warning: the header wins)")
            }
            while let entry = cursor.next() {
                switch entry {
                case .frame(let batch, _):
                    frames += 1
                    records += batch.recordCount
                case .damaged(let damage):
                    if damage.isTornTail && location.isOpen {
                        print(
                            "\(location.path)@\(damage.offset): torn tail of an .open segment (\(damage.length) bytes, "
                                + "\(describeLost(damage.records))); recovery cuts it"
                        )
                        continue
                    }
                    problems += 1
                    print(
                        "\(location.path)@\(damage.offset): \(damage.reason) (\(grouped(Int(damage.length))) bytes, "
                            + "\(describeLost(damage.records)) lost)"
                    )
                }
            }
            if location.isQuarantined {
                problems += 1
                print("\(location.path): quarantined (its intact frames were replayed; kept for its damage)")
            }
        }
        for (path, reason) in found.foreign {
            problems += 1
            print("\(path): \(reason)")
        }
        print("verify: \(found.segments.count) segments, \(grouped(frames)) frames, \(grouped(records)) records, \(problems) problems")
        if problems > 0 { throw ExitCode(1) }
    }
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print spill segments as JSON lines, or as OTLP/JSON requests.",
        discussion:
            "Streams: memory stays flat whatever the size of the segments. Damage is reported on standard error; exit status 1 if "
            + "there was any."
    )

    @Argument(help: "Spill directories, signal directories, or segment files.") var paths: [String]
    @Option(help: "jsonl (one record per line) or otlp-json (one OTLP/JSON request per frame and line).") var format = "jsonl"
    @Flag(help: "Also decode the rejected and refused areas of a spill directory.") var rejected = false

    func validate() throws {
        guard format == "jsonl" || format == "otlp-json" else { throw ValidationError("--format: jsonl or otlp-json, got \(format)") }
    }

    func run() throws {
        let found: SpillPaths
        do {
            found = try SpillPaths.resolve(paths, areas: rejected ? Set(SpillArea.allCases) : [.spilled])
        } catch {
            printError("decode: \(error)")
            throw ExitCode(1)
        }
        var failed = !found.foreign.isEmpty
        for (path, reason) in found.foreign { printError("decode: \(path): \(reason)") }
        let out = JSONLinesWriter()
        for location in found.segments {
            guard let reader = try? SegmentReader(path: location.path) else { continue }
            while let entry = reader.next() {
                switch entry {
                case .damaged(let damage):
                    if !(damage.isTornTail && location.isOpen) { failed = true }
                    printError("decode: \(location.path)@\(damage.offset): \(damage.reason), \(describeLost(damage.records)) skipped")
                case .frame(let frame):
                    do {
                        if format == "otlp-json" {
                            let object =
                                switch reader.signal {
                                case .traces: OTLPJSON.traces(try OTLPDecoding.spans(from: frame.body))
                                case .logs: OTLPJSON.logs(try OTLPDecoding.logRecords(from: frame.body))
                                case .metrics: OTLPJSON.metrics(try OTLPDecoding.metricPoints(from: frame.body))
                                }
                            out.write(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
                        } else {
                            _ = try out.records(frame.body, signal: reader.signal, batch: frame.batchSequence)
                        }
                    } catch {
                        failed = true
                        printError("decode: \(location.path)@\(frame.offset): not an OTLP \(reader.signal) request: \(error)")
                    }
                }
            }
        }
        out.flush()
        if failed { throw ExitCode(1) }
    }
}
