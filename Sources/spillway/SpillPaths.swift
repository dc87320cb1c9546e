import ArgumentParser
import Foundation
import Resilience

/// One segment file a tool found, and where it sits in a spill directory.
struct SegmentLocation {
    var path: String
    /// The area its directories say (`rejected/traces/…` → rejected); spilled otherwise.
    var area: SpillArea
    /// The signal its directory says, if it is in a `traces`, `logs` or `metrics` directory.
    var signalFromPath: TelemetrySignal?
    /// The spill directory it belongs to (where `spillway.lock` is), if recognizable.
    var spillDirectory: String?
    /// For a destination's part of a spill directory given as a whole: `destinations/<name>`.
    var destination: String?

    var name: String { (path as NSString).lastPathComponent }
    var suffix: String { (name as NSString).pathExtension }
    var isOpen: Bool { suffix == "open" }
    var isQuarantined: Bool { suffix == "damaged" }

    /// `<seq>.progress` beside a segment named by the spill layout, `<path>.progress` otherwise.
    var progressPath: String { sideFile("progress") }
    var rejectionsPath: String { sideFile("rejections") }

    private func sideFile(_ suffix: String) -> String {
        if let (sequence, _) = SpillLayout.parse(name) {
            return segmentPath((path as NSString).deletingLastPathComponent, sequence, suffix)
        }
        return path + "." + suffix
    }

    /// The path below the spill directory (`traces/00…01.spill`), or the path as given.
    var displayName: String {
        guard let spillDirectory, path.hasPrefix(spillDirectory + "/") else { return path }
        return (destination.map { $0 + "/" } ?? "") + String(path.dropFirst(spillDirectory.count + 1))
    }
}

/// Why a path given to a tool cannot be used. Nothing is touched.
struct SpillPathError: Error, CustomStringConvertible {
    var description: String
}

/// What a set of paths holds: segments, and the files that were not segments.
struct SpillPaths {
    var segments: [SegmentLocation] = []
    /// Files that look like segments by name or were given by name, but are not.
    var foreign: [(path: String, reason: String)] = []
    /// The spill directories involved: those given, and those of the segments found (a spill
    /// directory with no segment may still have a ring file to report).
    var spillDirectories: [String] { Array(Set(segments.compactMap(\.spillDirectory) + givenSpillDirectories)).sorted() }
    /// The spill directories given as paths (absolute).
    private var givenSpillDirectories: [String] = []
    /// The parts of ``ExportDestination``s (`<spill directory>/destinations/<name>`) of the spill
    /// directories given, when they were not included (``resolve(_:areas:destinations:)``).
    var destinationParts: [String] = []

    /// Finds the segments under `paths`: segment files, signal directories (`traces/`), area
    /// directories (`rejected/`) and spill directories. A spill directory contributes `areas`,
    /// and with `destinations` the same of each destination's part (`destinations/<name>`),
    /// which are otherwise only listed in ``destinationParts``.
    /// - Throws: ``SpillPathError`` for a missing or unreadable path, or a directory that is
    ///   not part of a spill directory.
    static func resolve(_ paths: [String], areas: Set<SpillArea>, destinations: Bool = false) throws -> SpillPaths {
        var result = SpillPaths()
        for raw in paths {
            let path = raw.count > 1 && raw.hasSuffix("/") ? String(raw.dropLast()) : raw
            guard SpillLayout.exists(path) else { throw SpillPathError(description: "\(raw): no such file or directory") }
            guard access(path, R_OK) == 0 else {
                throw SpillPathError(description: "\(raw): not readable (\(String(cString: strerror(errno))))")
            }
            if !SpillLayout.isDirectory(path) {
                result.add(file: path, explicit: true)
                continue
            }
            let names = SpillLayout.list(path)
            let signals = names.filter { TelemetrySignal(named: $0) != nil }
            if names.contains(SpillLayout.lockFileName) || names.contains("rejected") || names.contains("refused") || !signals.isEmpty {
                // A spill directory, and its destinations' parts.
                result.givenSpillDirectories.append(path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path)
                var parts = [(path, nil as String?)]
                if names.contains("destinations") && SpillLayout.isDirectory(path + "/destinations") {
                    for name in SpillLayout.list(path + "/destinations").sorted()
                    where SpillLayout.isDirectory(path + "/destinations/" + name) {
                        if destinations {
                            parts.append((path + "/destinations/" + name, "destinations/" + name))
                        } else {
                            result.destinationParts.append(path + "/destinations/" + name)
                        }
                    }
                }
                for (part, label) in parts {
                    let first = result.segments.count
                    for area in SpillArea.allCases where areas.contains(area) {
                        for signal in TelemetrySignal.allCases {
                            let directory = SpillLayout.directory(part, area, signal)
                            if SpillLayout.isDirectory(directory) { result.add(directory: directory) }
                        }
                    }
                    for i in first..<result.segments.count { result.segments[i].destination = label }
                }
            } else if names.contains(where: { SpillLayout.parse($0) != nil }) || names.isEmpty {
                result.add(directory: path)  // a signal directory, or an empty one
            } else {
                throw SpillPathError(
                    description: "\(raw): not a spill directory (it has no traces/, logs/, metrics/, rejected/ or segment files)")
            }
        }
        return result
    }

    private mutating func add(directory: String) {
        for name in SpillLayout.list(directory) {
            guard let (_, suffix) = SpillLayout.parse(name), ["open", "spill", "damaged"].contains(suffix) else { continue }
            add(file: directory + "/" + name, explicit: false)
        }
    }

    private mutating func add(file path: String, explicit: Bool) {
        do {
            _ = try SegmentReader(path: path, headersOnly: true)
        } catch {
            foreign.append((path, error.reason))
            return
        }
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let parts = absolute.split(separator: "/").map(String.init)
        var location = SegmentLocation(path: path, area: .spilled)
        if parts.count >= 2, let signal = TelemetrySignal(named: parts[parts.count - 2]) {
            location.signalFromPath = signal
            if parts.count >= 3, let area = SpillArea(rawValue: parts[parts.count - 3]), area != .spilled {
                location.area = area
                location.spillDirectory = "/" + parts.dropLast(3).joined(separator: "/")
            } else {
                location.spillDirectory = "/" + parts.dropLast(2).joined(separator: "/")
            }
        }
        segments.append(location)
    }
}

extension TelemetrySignal {
    init?(named name: String) {
        switch name {
        case "traces": self = .traces
        case "logs": self = .logs
        case "metrics": self = .metrics
        default: return nil
        }
    }
}

/// Writes to standard error (progress, warnings), unbuffered.
func printError(_ text: String, terminator: String = "\n") {
    FileHandle.standardError.write(Data((text + terminator).utf8))
}

/// `1234567` → `1,234,567`.
func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

/// What a spill directory still holds in each area, in records, and the command that sends it:
/// the last lines of `inspect` and `replay`, so that nothing on disk goes unmentioned.
func leftBehind(in directories: [String]) -> [String] {
    var lines: [String] = []
    for directory in directories {
        do {
            if let ring = try RingFile.inspect(directory: directory) {
                if ring.spans + ring.logRecords > 0 {
                    lines.append(
                        "left in the ring file: \(grouped(ring.spans)) spans and \(grouped(ring.logRecords)) log records a process "
                            + "committed and did not deliver — send them with `spillway recover \(directory)`")
                } else if ring.isStale {
                    lines.append("a ring file from before the machine restarted, never synced: the next start sets it aside, unread")
                }
            }
        } catch {
            // Said, not swallowed: a ring file that cannot be read may still hold records.
            lines.append(
                "the ring file could not be read (\(error.message)); `spillway recover \(directory)` sets it aside if it is damaged")
        }
        for (area, command, why) in [
            (SpillArea.spilled, "spillway replay \(directory)", "spilled: the collector did not answer"),
            (.rejected, "spillway replay --rejected \(directory)", "rejected: the collector refused the configuration; fix it first")
        ] {
            guard let found = try? SpillPaths.resolve([directory], areas: [area]) else { continue }
            var records = 0
            for location in found.segments where !location.isQuarantined {
                guard let reader = try? SegmentReader(path: location.path, headersOnly: true) else { continue }
                var inSegment = 0
                while let entry = reader.next() { if case .frame(let frame) = entry { inSegment += frame.records } }
                records += max(0, inSegment - SegmentProgress.read(location.progressPath).records)
            }
            if records > 0 { lines.append("left on disk: \(grouped(records)) records \(why) — send them with `\(command)`") }
        }
    }
    return lines
}
