#!/usr/bin/env python3
"""Checks OTLP request bytes written by Spillway with the official opentelemetry-proto package.

Usage: check_otlp.py traces|logs BODY.bin EXPECTED.json

EXPECTED.json lists the records the Swift test emitted, field by field, from the values it put in
(not from Spillway's own decoder). Every listed field must match the decoded protobuf exactly; the
script prints each mismatch and exits 1 if there is any.
"""
import json
import sys

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def any_value(v):
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return {"string": v.string_value}
    if kind == "bool_value":
        return {"bool": v.bool_value}
    if kind == "int_value":
        return {"int": v.int_value}
    if kind == "double_value":
        return {"double": v.double_value}
    if kind == "bytes_value":
        return {"bytes": v.bytes_value.hex()}
    if kind == "array_value":
        return {"array": [any_value(x) for x in v.array_value.values]}
    if kind == "kvlist_value":
        return {"map": [[kv.key, any_value(kv.value)] for kv in v.kvlist_value.values]}
    return {"empty": True}


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def span_json(scope, span):
    return {
        "scope": scope.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "trace_state": span.trace_state,
        "name": span.name,
        "kind": span.kind,
        "start": span.start_time_unix_nano,
        "end": span.end_time_unix_nano,
        "attributes": attributes(span.attributes),
        "dropped_attributes_count": span.dropped_attributes_count,
        "events": [{"time": e.time_unix_nano, "name": e.name, "attributes": attributes(e.attributes)} for e in span.events],
        "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex(), "attributes": attributes(l.attributes)} for l in span.links],
        "status_code": span.status.code,
        "status_message": span.status.message,
        "flags": span.flags,
    }


def log_json(scope, log):
    return {
        "scope": scope.name,
        "time": log.time_unix_nano,
        "observed_time_nonzero": log.observed_time_unix_nano > 0,
        "severity_number": log.severity_number,
        "severity_text": log.severity_text,
        "body": any_value(log.body),
        "attributes": attributes(log.attributes),
        "dropped_attributes_count": log.dropped_attributes_count,
        "trace_id": log.trace_id.hex(),
        "span_id": log.span_id.hex(),
        "event_name": log.event_name,
    }


def main():
    signal, body_path, expected_path = sys.argv[1:4]
    body = open(body_path, "rb").read()
    expected = json.load(open(expected_path))
    records, resource = [], {}
    if signal == "traces":
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                records += [span_json(ss.scope, s) for s in ss.spans]
    else:
        request = logs_service_pb2.ExportLogsServiceRequest()
        request.ParseFromString(body)
        for rl in request.resource_logs:
            resource = attributes(rl.resource.attributes)
            for sl in rl.scope_logs:
                records += [log_json(sl.scope, r) for r in sl.log_records]

    problems = []
    for key, value in expected.get("resource", {}).items():
        if resource.get(key) != value:
            problems.append(f"resource[{key}]: expected {value!r}, decoded {resource.get(key)!r}")
    want = expected["records"]
    if len(records) != len(want):
        problems.append(f"expected {len(want)} records, decoded {len(records)}")
    for i, (got, exp) in enumerate(zip(records, want)):
        for field, value in exp.items():
            if got.get(field) != value:
                problems.append(f"record {i} {field}: expected {value!r}, decoded {got.get(field)!r}")
    for p in problems:
        print(p)
    print(f"checked {len(records)} {signal} records with opentelemetry-proto: {len(problems)} mismatches")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
