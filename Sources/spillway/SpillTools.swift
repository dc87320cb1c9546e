import ArgumentParser
import CSpill
import Foundation
import Glibc
import Resilience

// The file tools read segments with CSpill's reader directly: the same code the library replays
// with, with no pipeline around it.

/// One segment file on disk.
struct SegmentFile {
    var path: String
    var isOpen: Bool { path.hasSuffix(".open") }

    /// Every segment under `path`: a segment file, a signal directory, or a spill directory.
    static func find(_ path: String) -> [SegmentFile] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [] }
        guard isDirectory.boolValue else { return [SegmentFile(path: path)] }
        var found: [SegmentFile] = []
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() {
            let child = path + "/" + name
            if name.hasSuffix(".spill") || name.hasSuffix(".open") {
                found.append(SegmentFile(path: child))
            } else if name == "traces" || name == "logs" {
                found += find(child)
            }
        }
        return found
    }

    enum Entry {
        case frame(offset: UInt64, compressed: Int, body: [UInt8], records: Int, batch: UInt64)
        case damaged(offset: UInt64, records: Int, skipped: UInt64, torn: Bool)
    }

    /// Reads every frame; `nil` header when the file is not a segment.
    func read(_ body: (Entry) -> Void) -> csp_segment_header_t? {
        var reader: OpaquePointer?
        var header = csp_segment_header_t()
        guard csp_reader_open(path, &reader, &header) == 0, let reader else { return nil }
        defer { csp_reader_close(reader) }
        while true {
            var frame = csp_frame_t()
            let rc = csp_reader_next(reader, &frame)
            switch rc {
            case 0: return header
            case 1:
                body(.frame(offset: frame.offset, compressed: Int(frame.compressed_length),
                            body: Array(UnsafeBufferPointer(start: frame.payload, count: Int(frame.uncompressed_length))),
                            records: Int(frame.records), batch: frame.batch_sequence))
            default:
                body(.damaged(offset: frame.offset, records: Int(frame.records), skipped: frame.skipped_bytes, torn: rc == -ENODATA))
            }
        }
    }
}

private func signalName(_ signal: UInt16) -> String { signal == 1 ? "traces" : signal == 2 ? "logs" : "signal \(signal)" }

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the segments of a spill directory: frames, records, bytes raw and compressed, time range, state.")

    @Argument(help: "A spill directory, a signal directory, or segment files.") var paths: [String]

    func run() throws {
        var total = (segments: 0, frames: 0, records: 0, raw: 0, compressed: 0, damaged: 0)
        print("segment                                   signal  state   frames   records        raw   compressed  created")
        for file in paths.flatMap(SegmentFile.find) {
            var frames = 0, records = 0, raw = 0, compressed = 0, damaged = 0
            let header = file.read { entry in
                switch entry {
                case .frame(_, let c, let body, let n, _): frames += 1; records += n; raw += body.count; compressed += c
                case .damaged: damaged += 1
                }
            }
            guard let header else { print("\(file.path): not a spill segment"); total.damaged += 1; continue }
            let created = Date(timeIntervalSince1970: Double(header.created_ns) / 1e9)
            let state = file.isOpen ? "open" : damaged > 0 ? "damaged" : "sealed"
            let name = file.path.split(separator: "/").suffix(2).joined(separator: "/")
            print("\(name.padding(toLength: 40, withPad: " ", startingAt: 0))  \(signalName(header.signal).padding(toLength: 6, withPad: " ", startingAt: 0))  \(state.padding(toLength: 7, withPad: " ", startingAt: 0)) \(String(format: "%7d %9d %10d %12d", frames, records, raw, compressed))  \(created)")
            total.segments += 1; total.frames += frames; total.records += records; total.raw += raw; total.compressed += compressed; total.damaged += damaged
        }
        print("total: \(total.segments) segments, \(total.frames) frames, \(total.records) records, \(total.raw) bytes raw, \(total.compressed) compressed (\(total.raw > 0 ? String(format: "%.1f", Double(total.raw) / Double(max(total.compressed, 1))) : "-")×), \(total.damaged) damaged")
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every frame's CRCs, zstd frame and protobuf; exit 0 when all are sound, 1 otherwise.")

    @Argument(help: "A spill directory, a signal directory, or segment files.") var paths: [String]

    func run() throws {
        var problems = 0, frames = 0
        for file in paths.flatMap(SegmentFile.find) {
            let header = file.read { entry in
                switch entry {
                case .frame(let offset, _, let body, let records, _):
                    frames += 1
                    do {
                        let count = try decodedCount(body, signal: file.path.contains("/logs/") ? .logs : .traces, records: records)
                        if count != records {
                            problems += 1
                            print("\(file.path)@\(offset): header says \(records) records, the request holds \(count)")
                        }
                    } catch {
                        problems += 1
                        print("\(file.path)@\(offset): not a valid OTLP request: \(error)")
                    }
                case .damaged(let offset, let records, let skipped, let torn):
                    problems += 1
                    print("\(file.path)@\(offset): \(torn ? "torn tail" : "damaged frame") (\(skipped) bytes, \(records) records lost)")
                }
            }
            if header == nil { problems += 1; print("\(file.path): not a spill segment") }
        }
        print("verify: \(frames) frames, \(problems) problems")
        if problems > 0 { throw ExitCode(1) }
    }

    private func decodedCount(_ body: [UInt8], signal: TelemetrySignal, records: Int) throws -> Int {
        signal == .traces ? try OTLPDecoding.spans(from: body).count : try OTLPDecoding.logRecords(from: body).count
    }
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print spill segments as JSON: one record per line (jsonl), or one OTLP/JSON request per frame and line (otlp-json).")

    @Argument(help: "A spill directory, a signal directory, or segment files.") var paths: [String]
    @Option(help: "jsonl (one record per line) or otlp-json (one OTLP/JSON request per frame and line).") var format = "jsonl"

    func validate() throws {
        guard format == "jsonl" || format == "otlp-json" else { throw ValidationError("--format: jsonl or otlp-json, got \(format)") }
    }

    func run() throws {
        var failed = false
        for file in paths.flatMap(SegmentFile.find) {
            let logs = file.path.contains("/logs/")
            _ = file.read { entry in
                guard case .frame(_, _, let body, _, let batch) = entry else { failed = true; return }
                if format == "otlp-json" {
                    if logs, let records = try? OTLPDecoding.logRecords(from: body) {
                        emit(OTLPJSON.logs(records))
                    } else if !logs, let spans = try? OTLPDecoding.spans(from: body) {
                        emit(OTLPJSON.traces(spans))
                    } else {
                        failed = true
                    }
                    return
                }
                if logs, let records = try? OTLPDecoding.logRecords(from: body) {
                    for r in records {
                        emit(["signal": "logs", "batch": batch, "time_unix_nano": r.timeUnixNano, "severity": r.severityText,
                              "body": r.body.map(json) ?? NSNull(), "event_name": r.eventName, "trace_id": "\(r.traceID)", "span_id": "\(r.spanID)",
                              "attributes": r.attributes.mapValues(json), "scope": r.scopeName, "resource": r.resource.mapValues(json)])
                    }
                } else if !logs, let spans = try? OTLPDecoding.spans(from: body) {
                    for s in spans {
                        emit(["signal": "traces", "batch": batch, "trace_id": "\(s.traceID)", "span_id": "\(s.spanID)", "parent_span_id": "\(s.parentSpanID)",
                              "name": s.name, "kind": Int(s.kind), "start_time_unix_nano": s.startTimeUnixNano, "end_time_unix_nano": s.endTimeUnixNano,
                              "status_code": Int(s.statusCode), "attributes": s.attributes.mapValues(json), "events": s.events.count,
                              "links": s.links.count, "scope": s.scopeName, "resource": s.resource.mapValues(json)])
                    }
                } else {
                    failed = true
                }
            }
        }
        if failed { throw ExitCode(1) }
    }

    private func emit(_ object: [String: Any]) {
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            FileHandle.standardOutput.write(data + Data([0x0A]))
        }
    }

    private func json(_ value: AttributeValue) -> Any {
        switch value {
        case .string(let s): return s
        case .bool(let b): return b
        case .int(let i): return i
        case .double(let d): return d
        case .bytes(let b): return Data(b).base64EncodedString()
        case .array(let a): return a.map(json)
        case .map(let m): return Dictionary(m.map { ($0.key, json($0.value)) }, uniquingKeysWith: { a, _ in a })
        }
    }
}

struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send the frames of spill segments to a collector (with retries); delete each segment once all its frames were acknowledged.")

    @Argument(help: "A spill directory, a signal directory, or segment files.") var paths: [String]
    @Option(help: "OTLP/HTTP base URL (default: OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4318).") var endpoint: String?
    @Flag(help: "Keep the segments after replaying them.") var keep = false
    @Flag(help: "No progress bar.") var quiet = false

    func run() async throws {
        var configuration = try PipelineConfiguration.fromEnvironment().exporter
        if let endpoint { configuration.endpoint = endpoint }
        let transport = try OTLPHTTPExporter(configuration: configuration)
        let exporter = RetryingExporter(wrapping: transport, policy: ExportRetryPolicy(maximumElapsedTime: .seconds(60)))
        let files = paths.flatMap(SegmentFile.find).filter { !$0.isOpen }
        var batches: [(SegmentFile, ExportBatch)] = []
        var damaged = 0
        for file in files {
            let header = file.read { entry in
                switch entry {
                case .frame(_, _, let body, let records, let sequence):
                    batches.append((file, ExportBatch(signal: file.path.contains("/logs/") ? .logs : .traces, body: body, recordCount: records, sequence: sequence)))
                case .damaged: damaged += 1
                }
            }
            if header == nil { damaged += 1 }
        }
        let total = batches.reduce(0) { $0 + $1.1.recordCount }
        let start = ContinuousClock.now
        var sent = 0, failedSegments = Set<String>()
        for (file, batch) in batches {
            do {
                _ = try await exporter.export(batch)
                sent += batch.recordCount
            } catch {
                failedSegments.insert(file.path)
                FileHandle.standardError.write(Data("replay: \(file.path) batch \(batch.sequence): \(error)\n".utf8))
            }
            if !quiet { ProgressBar.draw(done: sent, total: total, since: start, unit: "records") }
        }
        if !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
        if !keep {
            for file in files where !failedSegments.contains(file.path) {
                unlink(file.path)
                unlink(file.path.replacingOccurrences(of: ".spill", with: ".progress"))
            }
        }
        await transport.shutdown()
        print("replay: \(sent) of \(total) records acknowledged from \(files.count) segments; \(failedSegments.count) segments kept after failures; \(damaged) damaged frames skipped")
        if !failedSegments.isEmpty || damaged > 0 { throw ExitCode(1) }
    }
}
