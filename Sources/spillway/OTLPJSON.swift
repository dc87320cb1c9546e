import Foundation
import Resilience

/// The OTLP/JSON encoding (OTLP specification, "JSON Protobuf Encoding") of decoded records:
/// lowerCamelCase field names, trace and span ids as hex, 64-bit integers as strings, enums as
/// numbers, bytes as base64. One request object per frame, records grouped by resource and scope.
enum OTLPJSON {
    static func traces(_ spans: [DecodedSpan]) -> [String: Any] {
        var order: [String] = []
        var groups:
            [String: (
                resource: [String: AttributeValue], scopes: [String],
                byScope: [String: (name: String, version: String, spans: [[String: Any]])]
            )] = [:]
        for span in spans {
            let resourceKey = "\(span.resource.sorted { $0.key < $1.key })"
            if groups[resourceKey] == nil {
                order.append(resourceKey)
                groups[resourceKey] = (span.resource, [], [:])
            }
            let scopeKey = span.scopeName + "\u{0}" + span.scopeVersion
            if groups[resourceKey]!.byScope[scopeKey] == nil {
                groups[resourceKey]!.scopes.append(scopeKey)
                groups[resourceKey]!.byScope[scopeKey] = (span.scopeName, span.scopeVersion, [])
            }
            groups[resourceKey]!.byScope[scopeKey]!.spans.append(encode(span))
        }
        return [
            "resourceSpans": order.map { key in
                let group = groups[key]!
                return [
                    "resource": ["attributes": attributes(group.resource)],
                    "scopeSpans": group.scopes.map { scope -> [String: Any] in
                        let s = group.byScope[scope]!
                        return ["scope": ["name": s.name, "version": s.version], "spans": s.spans]
                    }
                ] as [String: Any]
            }
        ]
    }

    static func logs(_ records: [DecodedLogRecord]) -> [String: Any] {
        var order: [String] = []
        var groups:
            [String: (
                resource: [String: AttributeValue], scopes: [String],
                byScope: [String: (name: String, version: String, records: [[String: Any]])]
            )] = [:]
        for record in records {
            let resourceKey = "\(record.resource.sorted { $0.key < $1.key })"
            if groups[resourceKey] == nil {
                order.append(resourceKey)
                groups[resourceKey] = (record.resource, [], [:])
            }
            let scopeKey = record.scopeName + "\u{0}" + record.scopeVersion
            if groups[resourceKey]!.byScope[scopeKey] == nil {
                groups[resourceKey]!.scopes.append(scopeKey)
                groups[resourceKey]!.byScope[scopeKey] = (record.scopeName, record.scopeVersion, [])
            }
            groups[resourceKey]!.byScope[scopeKey]!.records.append(encode(record))
        }
        return [
            "resourceLogs": order.map { key in
                let group = groups[key]!
                return [
                    "resource": ["attributes": attributes(group.resource)],
                    "scopeLogs": group.scopes.map { scope -> [String: Any] in
                        let s = group.byScope[scope]!
                        return ["scope": ["name": s.name, "version": s.version], "logRecords": s.records]
                    }
                ] as [String: Any]
            }
        ]
    }

    private static func encode(_ span: DecodedSpan) -> [String: Any] {
        var out: [String: Any] = [
            "traceId": "\(span.traceID)", "spanId": "\(span.spanID)", "name": span.name, "kind": Int(span.kind),
            "startTimeUnixNano": "\(span.startTimeUnixNano)", "endTimeUnixNano": "\(span.endTimeUnixNano)",
            "attributes": attributes(span.attributes), "droppedAttributesCount": Int(span.droppedAttributesCount),
            "events": span.events.map {
                [
                    "timeUnixNano": "\($0.timeUnixNano)", "name": $0.name, "attributes": attributes($0.attributes),
                    "droppedAttributesCount": Int($0.droppedAttributesCount)
                ] as [String: Any]
            },
            "droppedEventsCount": Int(span.droppedEventsCount),
            "links": span.links.map {
                [
                    "traceId": "\($0.traceID)", "spanId": "\($0.spanID)", "traceState": $0.traceState,
                    "attributes": attributes($0.attributes), "droppedAttributesCount": Int($0.droppedAttributesCount),
                    "flags": Int($0.flags)
                ] as [String: Any]
            },
            "droppedLinksCount": Int(span.droppedLinksCount),
            "status": ["code": Int(span.statusCode), "message": span.statusMessage] as [String: Any],
            "flags": Int(span.flags)
        ]
        if span.parentSpanID.isValid { out["parentSpanId"] = "\(span.parentSpanID)" }
        if !span.traceState.isEmpty { out["traceState"] = span.traceState }
        return out
    }

    private static func encode(_ record: DecodedLogRecord) -> [String: Any] {
        var out: [String: Any] = [
            "timeUnixNano": "\(record.timeUnixNano)", "observedTimeUnixNano": "\(record.observedTimeUnixNano)",
            "severityNumber": Int(record.severityNumber), "severityText": record.severityText,
            "attributes": attributes(record.attributes), "droppedAttributesCount": Int(record.droppedAttributesCount),
            "flags": Int(record.flags)
        ]
        if let body = record.body { out["body"] = value(body) }
        if record.traceID.isValid { out["traceId"] = "\(record.traceID)" }
        if record.spanID.isValid { out["spanId"] = "\(record.spanID)" }
        if !record.eventName.isEmpty { out["eventName"] = record.eventName }
        return out
    }

    static func jsonAttributes(_ attributes: [String: AttributeValue]) -> [[String: Any]] { Self.attributes(attributes) }

    private static func attributes(_ attributes: [String: AttributeValue]) -> [[String: Any]] {
        attributes.sorted { $0.key < $1.key }.map { ["key": $0.key, "value": value($0.value)] }
    }

    private static func value(_ value: AttributeValue) -> [String: Any] {
        switch value {
        case .string(let s): return ["stringValue": s]
        case .bool(let b): return ["boolValue": b]
        case .int(let i): return ["intValue": "\(i)"]
        case .double(let d): return ["doubleValue": d]
        case .bytes(let b): return ["bytesValue": Data(b).base64EncodedString()]
        case .array(let a): return ["arrayValue": ["values": a.map(Self.value)]]
        case .map(let m): return ["kvlistValue": ["values": m.map { ["key": $0.key, "value": Self.value($0.value)] as [String: Any] }]]
        }
    }
}
