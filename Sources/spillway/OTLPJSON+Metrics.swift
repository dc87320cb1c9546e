import Foundation
import Resilience

extension OTLPJSON {
    /// An `ExportMetricsServiceRequest` in the OTLP/JSON encoding: data points grouped by
    /// resource, scope and metric, in the order they came.
    static func metrics(_ points: [DecodedMetricPoint]) -> [String: Any] {
        var resources: [(key: String, resource: [String: AttributeValue], scopes: [(name: String, metrics: [[String: Any]])])] = []
        var lastMetric: (resource: String, scope: String, name: String, kind: DecodedMetricPoint.Kind)?
        for point in points {
            let resourceKey = "\(point.resource.sorted { $0.key < $1.key })"
            if resources.last?.key != resourceKey { resources.append((resourceKey, point.resource, [])) }
            if resources[resources.count - 1].scopes.last?.name != point.scopeName {
                resources[resources.count - 1].scopes.append((point.scopeName, []))
            }
            let r = resources.count - 1
            let s = resources[r].scopes.count - 1
            let same = lastMetric.map { $0 == (resourceKey, point.scopeName, point.name, point.kind) } ?? false
            if !same || resources[r].scopes[s].metrics.isEmpty {
                var metric: [String: Any] = ["name": point.name]
                if !point.unit.isEmpty { metric["unit"] = point.unit }
                if !point.description.isEmpty { metric["description"] = point.description }
                var data: [String: Any] = ["dataPoints": [] as [[String: Any]]]
                if point.kind != .gauge { data["aggregationTemporality"] = point.temporality }
                if point.kind == .sum { data["isMonotonic"] = point.isMonotonic }
                metric[key(point.kind)] = data
                resources[r].scopes[s].metrics.append(metric)
            }
            lastMetric = (resourceKey, point.scopeName, point.name, point.kind)
            let m = resources[r].scopes[s].metrics.count - 1
            var data = resources[r].scopes[s].metrics[m][key(point.kind)] as! [String: Any]
            data["dataPoints"] = (data["dataPoints"] as! [[String: Any]]) + [encode(point)]
            resources[r].scopes[s].metrics[m][key(point.kind)] = data
        }
        return [
            "resourceMetrics": resources.map { group in
                [
                    "resource": ["attributes": jsonAttributes(group.resource)],
                    "scopeMetrics": group.scopes.map { ["scope": ["name": $0.name], "metrics": $0.metrics] as [String: Any] }
                ] as [String: Any]
            }
        ]
    }

    private static func key(_ kind: DecodedMetricPoint.Kind) -> String {
        switch kind {
        case .gauge: "gauge"
        case .sum: "sum"
        case .histogram: "histogram"
        case .exponentialHistogram: "exponentialHistogram"
        case .summary: "summary"
        }
    }

    private static func encode(_ point: DecodedMetricPoint) -> [String: Any] {
        var out: [String: Any] = [
            "attributes": jsonAttributes(point.attributes), "startTimeUnixNano": "\(point.startTimeUnixNano)",
            "timeUnixNano": "\(point.timeUnixNano)"
        ]
        if point.kind == .histogram {
            out["count"] = "\(point.count)"
            out["sum"] = point.value
            out["bucketCounts"] = point.bucketCounts.map { "\($0)" }
            out["explicitBounds"] = point.explicitBounds
            if let minimum = point.minimum { out["min"] = minimum }
            if let maximum = point.maximum { out["max"] = maximum }
        } else if point.kind == .exponentialHistogram {
            out["count"] = "\(point.count)"
            out["sum"] = point.value
            out["scale"] = point.scale
            out["zeroCount"] = "\(point.zeroCount)"
            out["positive"] = ["offset": point.positive.offset, "bucketCounts": point.positive.counts.map { "\($0)" }] as [String: Any]
            out["negative"] = ["offset": point.negative.offset, "bucketCounts": point.negative.counts.map { "\($0)" }] as [String: Any]
            if let minimum = point.minimum { out["min"] = minimum }
            if let maximum = point.maximum { out["max"] = maximum }
        } else if point.isInteger {
            out["asInt"] = "\(Int64(point.value))"
        } else {
            out["asDouble"] = point.value
        }
        return out
    }
}
