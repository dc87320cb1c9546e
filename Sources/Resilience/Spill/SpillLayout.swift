#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where things are in a spill directory (FORMAT.md "Layout"):
///
/// ```
/// <spill dir>/spillway.lock              held (flock) by the pipeline that writes here
/// <spill dir>/<signal>/                  spilled: replayed when the collector answers
/// <spill dir>/rejected/<signal>/         refused for the client's configuration (401, 403, 404, …):
///                                        replayed once the configuration changed or a probe succeeded
/// <spill dir>/refused/<signal>/          copies of requests whose data the collector refused (400,
///                                        partial success): kept for inspection, replayed only by hand
/// ```
/// In each: `<sequence>.open` (being written), `.spill` (sealed), `.progress` (replay progress),
/// `.damaged` (replayed, kept for its damaged frames), `.rejections` (the collector's answers).
package enum SpillLayout {
    package static let lockFileName = "spillway.lock"

    package static func directory(_ spillDirectory: String, _ area: SpillArea, _ signal: TelemetrySignal) -> String {
        spillDirectory + "/" + area.relativePath(signal)
    }

    /// A segment as events and logs name it: `traces/00000000000000000001`,
    /// `rejected/logs/00000000000000000002` (the file ends `.open` or `.spill`).
    package static func segmentName(_ area: SpillArea, _ signal: TelemetrySignal, _ sequence: UInt64) -> String {
        let path = segmentPath(area.relativePath(signal), sequence, "spill")
        return String(path.dropLast(".spill".count))
    }

    /// The sequence and suffix of a segment file name (`00000000000000000007.spill`), or `nil`.
    package static func parse(_ name: String) -> (sequence: UInt64, suffix: String)? {
        guard let dot = name.firstIndex(of: "."), name.distance(from: name.startIndex, to: dot) == 20,
            let sequence = UInt64(name[..<dot])
        else { return nil }
        return (sequence, String(name[name.index(after: dot)...]))
    }

    /// One line of a `.rejections` file: the frame at `offset` and the collector's answer.
    package static func rejectionLine(offset: UInt64, batch: ExportBatch, status: Int?, kind: ExportFailureKind, message: String) -> String
    {
        "{\"offset\":\(offset),\"batch\":\(batch.sequence),\"records\":\(batch.recordCount),"
            + "\"status\":\(status.map(String.init) ?? "null"),\"kind\":\(jsonString(kind.rawValue)),\"message\":\(jsonString(message))}"
    }
}

/// Replay progress inside one segment, kept in `<sequence>.progress` (text:
/// `<entries> <records> <damaged>`): the first `entries` entries (frames and damage, in file
/// order) are done — delivered, moved to another area, or found damaged — and hold `records`
/// records; `damaged` of them were damage.
package struct SegmentProgress: Sendable, Hashable {
    package var entries = 0
    package var records = 0
    package var damaged = 0

    package init(entries: Int = 0, records: Int = 0, damaged: Int = 0) {
        self.entries = entries
        self.records = records
        self.damaged = damaged
    }

    package static func read(_ path: String) -> SegmentProgress {
        guard let text = SpillLayout.read(path, limit: 128) else { return SegmentProgress() }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
        guard parts.count >= 2, parts.allSatisfy({ $0 >= 0 }) else { return SegmentProgress() }
        return SegmentProgress(entries: parts[0], records: parts[1], damaged: parts.count > 2 ? parts[2] : 0)
    }

    package func write(_ path: String) {
        SpillLayout.replace(path, with: "\(entries) \(records) \(damaged)\n")
    }
}
