import Foundation
import Resilience

/// Samples a pipeline's books every 100 ms during `spillway demo --outage`, marks what happened
/// (collector down and up, breaker open, probe, recovered), and draws the whole as an SVG.
final class OutageTimeline: @unchecked Sendable {
    struct Sample {
        var t: Double
        var emitted: Int
        var exported: Int
        var spilled: Int
        var replayed: Int
        var dropped: Int
        var onDisk: Int
        var breaker: String
    }

    private let lock = NSLock()
    private var samples: [Sample] = []
    private var marks: [(t: Double, label: String)] = []
    private let start = ContinuousClock.now

    var elapsed: Double { seconds(ContinuousClock.now - start) }

    func mark(_ label: String) {
        lock.withLock { marks.append((elapsed, label)) }
    }

    /// Takes one sample (and marks the breaker's changes).
    func sample(_ stats: PipelineStats) {
        func total(_ pick: (PipelineStats.Signal) -> Int) -> Int { pick(stats.spans) + pick(stats.logs) + pick(stats.metrics) }
        let breaker = stats.circuitBreakerState?.rawValue ?? "closed"
        let sample = Sample(
            t: elapsed, emitted: total(\.emitted), exported: total(\.exported), spilled: total(\.spilled), replayed: total(\.replayed),
            dropped: total(\.droppedTotal), onDisk: total(\.onDisk), breaker: breaker)
        lock.withLock {
            if let previous = samples.last?.breaker, previous != breaker {
                switch breaker {
                case "open": marks.append((sample.t, previous == "half_open" ? "probe failed" : "breaker open"))
                case "half_open": marks.append((sample.t, "probe"))
                default: marks.append((sample.t, "recovered"))
                }
            }
            samples.append(sample)
        }
    }

    /// The SVG: records per 100 ms (emitted, exported, spilled, replayed, dropped) as lines, the
    /// spill backlog as an area on its own scale, the breaker as a band, the marks as rules. The
    /// series and the final books are in `<metadata>` as JSON, so that a test can add them up.
    func svg(title: String, books: PipelineStats) -> String {
        let (samples, marks) = lock.withLock { (self.samples, self.marks) }
        let width = 960.0
        let height = 440.0
        let left = 64.0
        let right = 64.0
        let top = 48.0
        let plotBottom = 330.0
        let bandTop = 350.0
        let bandHeight = 18.0
        let duration = max(samples.last?.t ?? 1, 1)
        func x(_ t: Double) -> Double { left + (width - left - right) * t / duration }

        // Per-interval deltas of the cumulative counts.
        var series: [(name: String, color: String, values: [Int])] = [
            ("emitted", "#4c78a8", []), ("exported", "#54a24b", []), ("spilled", "#f58518", []), ("replayed", "#b279a2", []),
            ("dropped", "#e45756", [])
        ]
        var previous = Sample(t: 0, emitted: 0, exported: 0, spilled: 0, replayed: 0, dropped: 0, onDisk: 0, breaker: "closed")
        for sample in samples {
            let deltas = [
                sample.emitted - previous.emitted, sample.exported - previous.exported, sample.spilled - previous.spilled,
                sample.replayed - previous.replayed, sample.dropped - previous.dropped
            ]
            for i in series.indices { series[i].values.append(deltas[i]) }
            previous = sample
        }
        let peak = max(1, series.flatMap(\.values).max() ?? 1)
        let backlogPeak = max(1, samples.map(\.onDisk).max() ?? 1)
        func y(_ value: Int) -> Double { plotBottom - (plotBottom - top) * Double(value) / Double(peak) }
        func yBacklog(_ value: Int) -> Double { plotBottom - (plotBottom - top) * Double(value) / Double(backlogPeak) }

        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
            <title>\(escape(title))</title>
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="24" font-size="15" font-weight="bold">\(escape(title))</text>

            """
        // The backlog area first, under the lines.
        if !samples.isEmpty {
            var area = "M \(fmt(x(samples[0].t))) \(fmt(plotBottom))"
            for sample in samples { area += " L \(fmt(x(sample.t))) \(fmt(yBacklog(sample.onDisk)))" }
            area += " L \(fmt(x(samples.last!.t))) \(fmt(plotBottom)) Z"
            out += "<path d=\"\(area)\" fill=\"#f58518\" fill-opacity=\"0.15\" stroke=\"none\" data-series=\"backlog\"/>\n"
        }
        // Axes and scales.
        out += "<line x1=\"\(left)\" y1=\"\(plotBottom)\" x2=\"\(width - right)\" y2=\"\(plotBottom)\" stroke=\"#333\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(plotBottom)\" stroke=\"#333\"/>\n"
        out += "<text x=\"\(left - 6)\" y=\"\(top + 4)\" text-anchor=\"end\">\(grouped(peak))</text>\n"
        out += "<text x=\"\(left - 6)\" y=\"\(plotBottom + 4)\" text-anchor=\"end\">0</text>\n"
        out +=
            "<text x=\"14\" y=\"\((top + plotBottom) / 2)\" transform=\"rotate(-90 14 \((top + plotBottom) / 2))\" "
            + "text-anchor=\"middle\">records per 100 ms</text>\n"
        out += "<text x=\"\(width - right + 6)\" y=\"\(top + 4)\" fill=\"#b35c00\">\(grouped(backlogPeak))</text>\n"
        out +=
            "<text x=\"\(width - 14)\" y=\"\((top + plotBottom) / 2)\" transform=\"rotate(90 \(width - 14) \((top + plotBottom) / 2))\" "
            + "text-anchor=\"middle\" fill=\"#b35c00\">on disk (area)</text>\n"
        let step = duration > 60 ? 10.0 : duration > 20 ? 5.0 : 1.0
        var tick = 0.0
        while tick <= duration {
            out += "<line x1=\"\(fmt(x(tick)))\" y1=\"\(plotBottom)\" x2=\"\(fmt(x(tick)))\" y2=\"\(plotBottom + 4)\" stroke=\"#333\"/>"
            out += "<text x=\"\(fmt(x(tick)))\" y=\"\(bandTop + bandHeight + 18)\" text-anchor=\"middle\">\(Int(tick)) s</text>\n"
            tick += step
        }
        // The series.
        for (name, color, values) in series {
            let points = zip(samples, values).map { "\(fmt(x($0.t))),\(fmt(y($1)))" }.joined(separator: " ")
            out += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" data-series=\"\(name)\"/>\n"
        }
        // The breaker band.
        out += "<text x=\"\(left - 6)\" y=\"\(bandTop + 13)\" text-anchor=\"end\">breaker</text>\n"
        for (i, sample) in samples.enumerated() {
            let from = i == 0 ? 0 : samples[i - 1].t
            let color = sample.breaker == "open" ? "#e45756" : sample.breaker == "half_open" ? "#eeca3b" : "#54a24b"
            out +=
                "<rect x=\"\(fmt(x(from)))\" y=\"\(bandTop)\" width=\"\(fmt(max(0.5, x(sample.t) - x(from))))\" "
                + "height=\"\(bandHeight)\" fill=\"\(color)\" data-breaker=\"\(sample.breaker)\"/>\n"
        }
        // The marks.
        for (i, mark) in marks.enumerated() {
            let at = fmt(x(mark.t))
            out +=
                "<line x1=\"\(at)\" y1=\"\(top)\" x2=\"\(at)\" y2=\"\(bandTop + bandHeight)\" stroke=\"#555\" stroke-dasharray=\"3,3\"/>\n"
            // Labels to the right of their rule, on four staggered rows so that neighbours do not overlap.
            out +=
                "<text x=\"\(fmt(x(mark.t) + 3))\" y=\"\(top + 10 + Double(i % 4) * 12)\" font-size=\"10\">\(escape(mark.label))</text>\n"
        }
        // The legend.
        var legendX = left
        for (name, color) in series.map({ ($0.name, $0.color) }) + [("on disk", "#f58518")] {
            out +=
                "<rect x=\"\(fmt(legendX))\" y=\"\(height - 22)\" width=\"12\" height=\"12\" fill=\"\(color)\" "
                + "fill-opacity=\"\(name == "on disk" ? 0.3 : 1)\"/>"
            out += "<text x=\"\(fmt(legendX + 16))\" y=\"\(height - 12)\">\(name)</text>\n"
            legendX += 100
        }
        // The data, for tests and for anyone who wants the numbers.
        let json: [String: Any] = [
            "interval_ms": 100, "t": samples.map(\.t), "series": Dictionary(uniqueKeysWithValues: series.map { ($0.name, $0.values) }),
            "on_disk": samples.map(\.onDisk), "breaker": samples.map(\.breaker),
            "marks": marks.map { ["t": $0.t, "label": $0.label] as [String: Any] },
            "books": [
                "emitted": books.spans.emitted + books.logs.emitted + books.metrics.emitted,
                "exported": books.spans.exported + books.logs.exported + books.metrics.exported,
                "spilled": books.spans.spilled + books.logs.spilled + books.metrics.spilled,
                "replayed": books.spans.replayed + books.logs.replayed + books.metrics.replayed,
                "dropped": books.spans.droppedTotal + books.logs.droppedTotal + books.metrics.droppedTotal
            ]
        ]
        let data =
            (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        out += "<metadata id=\"spillway-timeline\">\(escape(data))</metadata>\n</svg>\n"
        return out
    }

    private func fmt(_ value: Double) -> String { String(format: "%.1f", value) }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
