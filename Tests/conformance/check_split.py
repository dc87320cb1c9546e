#!/usr/bin/env python3
"""Checks a request that Spillway split by trace with the official opentelemetry-proto package.

Usage: check_split.py traces|logs ORIGINAL.bin PART.bin...

Every record of the original must be in exactly one part, byte for byte the same, under the same
resource and scope (and their schema URLs); no part may hold a record that is not in the original;
no trace id (records without one aside) may be in two parts. Prints each mismatch and exits 1 if
there is any, else "0 mismatches, N records in K parts".
"""
import sys
from collections import Counter

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def records(signal, body):
    """(resource bytes, resource schema, scope bytes, scope schema, record bytes, trace id) per record."""
    if signal == "traces":
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    yield (rs.resource.SerializeToString(), rs.schema_url, ss.scope.SerializeToString(), ss.schema_url,
                           span.SerializeToString(), span.trace_id)
    else:
        request = logs_service_pb2.ExportLogsServiceRequest()
        request.ParseFromString(body)
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    yield (rl.resource.SerializeToString(), rl.schema_url, sl.scope.SerializeToString(), sl.schema_url,
                           record.SerializeToString(), record.trace_id)


def main():
    signal, original, parts = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(original, "rb") as f:
        expected = Counter(r[:5] for r in records(signal, f.read()))
    got = Counter()
    part_of_trace = {}
    mismatches = 0
    for index, path in enumerate(parts):
        with open(path, "rb") as f:
            part = list(records(signal, f.read()))
        if not part:
            print(f"part {index} holds no record")
            mismatches += 1
        for record in part:
            got[record[:5]] += 1
            trace = record[5]
            if trace:
                if part_of_trace.setdefault(trace, index) != index:
                    print(f"trace {trace.hex()} in parts {part_of_trace[trace]} and {index}")
                    mismatches += 1
    for record, count in (expected - got).items():
        print(f"missing from the parts ({count}x): a record of {len(record[4])} bytes")
        mismatches += 1
    for record, count in (got - expected).items():
        print(f"in the parts but not in the original, or twice ({count}x): a record of {len(record[4])} bytes")
        mismatches += 1
    print(f"{mismatches} mismatches, {sum(got.values())} records in {len(parts)} parts")
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
