import Foundation
import Resilience
import ResilienceTesting

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

#if os(Linux)
    /// The crash scenario of the file-backed ring (issue: survive a crash of the service itself).
    extension FaultRunner {
        /// Loads at full speed (2 threads, spans and logs) on one spill directory, each killed at a
        /// random moment — SIGKILL, or `abort()` / a Swift `fatalError` in the middle of a span —
        /// and each the next one's recovery; then `spillway recover`. Every record whose emit
        /// returned before the crash (the child prints `acked <thread> <seq>` as they return)
        /// must arrive, counted by `spillway.load.seq` at the receiver; duplicates are counted.
        func ringCrashes(collectorUp: Bool) async throws -> FaultRow {
            let kills = 20
            let (spans, logs, threads) = (200_000, 50_000, 2)
            let stride = spans + logs
            let directory = temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let receiver = try await OTLPReceiver.start(retention: [], countIDs: false)
            defer { Task { try? await receiver.stop() } }
            let name = "crash × \(kills), ring file, collector \(collectorUp ? "up" : "down")"
            let start = ContinuousClock.now
            var generator = SystemRandomNumberGenerator()
            var acked = [[Int]](repeating: [Int](repeating: -1, count: threads), count: kills)
            var refused = Set<Int>()
            var peak = 0
            var ways: [String: Int] = [:]
            for i in 0..<kills {
                let way = i % 10 == 3 ? "abort" : i % 10 == 7 ? "fatal-error" : "SIGKILL"
                ways[way, default: 0] += 1
                var arguments = [
                    "load", "--endpoint", collectorUp ? receiver.endpoint : "http://127.0.0.1:9", "--spans", "\(spans)", "--logs",
                    "\(logs)", "--threads", "\(threads)", "--quiet", "--spill-dir", directory, "--sequence-start", "\(i * stride)",
                    "--report-acks"
                ]
                if way != "SIGKILL" {
                    arguments += ["--crash-at", "\(Int.random(in: 2_000...60_000, using: &generator))", "--crash-with", way]
                }
                let outcome = try spawn(
                    arguments, environment: [:], deadline: .seconds(60),
                    killAfter: way == "SIGKILL" ? Double.random(in: 0.3...2.0, using: &generator) : nil)
                peak = max(peak, outcome.peakRSS)
                for line in outcome.output.split(separator: "\n") {
                    let fields = line.split(separator: " ")
                    if fields.count == 3, fields[0] == "acked", let t = Int(fields[1]), let seq = Int(fields[2]), t < threads {
                        acked[i][t] = max(acked[i][t], seq)
                    } else if fields.count == 2, fields[0] == "refused", let seq = Int(fields[1]) {
                        refused.insert(i * stride + seq)
                    }
                }
            }
            let recover = try spawn(["recover", directory, "--endpoint", receiver.endpoint, "--quiet"], deadline: .seconds(300))
            // What had to arrive: each run's records up to the last one its threads saw return.
            let counts = (receiver.sequenceCounts(signal: .traces), receiver.sequenceCounts(signal: .logs))
            var (required, missing, duplicates) = (0, 0, 0)
            for i in 0..<kills {
                for t in 0..<threads where acked[i][t] >= 0 {
                    for seq in Swift.stride(from: t, through: acked[i][t], by: threads) where !refused.contains(i * stride + seq) {
                        let isSpan = seq < spans
                        let value = i * stride + (isSpan ? seq : seq - spans)
                        let table = isSpan ? counts.0 : counts.1
                        required += 1
                        if value >= table.count || table[value] == 0 { missing += 1 }
                    }
                }
            }
            for table in [counts.0, counts.1] { for n in table where n > 1 { duplicates += n - 1 } }
            let mix = ways.sorted { $0.key > $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            var row = FaultRow(scenario: name, load: "2 threads, full speed, \(kills) crashes (\(mix))")
            row.seconds = elapsedSeconds(since: start)
            row.emitted = required
            row.delivered = required - missing
            row.duplicates = duplicates
            row.peakRSS = peak
            let recoverLines = recover.output.split(separator: "\n")
            row.notes =
                "every acknowledged emit checked by seq; recover exit \(recover.status): "
                + (recoverLines.first { $0.hasPrefix("sent:") }.map(String.init) ?? "-")
            var problems: [String] = []
            if required == 0 { problems.append("no emit was acknowledged") }
            if missing > 0 { problems.append("\(missing) acknowledged records missing") }
            if recover.status != 0 { problems.append("recover left something: \(recoverLines.suffix(2).joined(separator: " / "))") }
            if peak > Self.rssBudget { problems.append("peak RSS \(peak / 1024) MiB") }
            row.verdict = problems.isEmpty ? "ok" : "FAIL: " + problems.joined(separator: "; ")
            return row
        }
    }
#endif
