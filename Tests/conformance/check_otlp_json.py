#!/usr/bin/env python3
"""Parses OTLP/JSON requests, one per line (`spillway decode --format otlp-json`), with the
official protobuf JSON parser and `opentelemetry-proto` messages; prints the span and log counts
as JSON. Exits 1 on the first line that does not parse."""
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

spans = logs = 0
for number, line in enumerate(open(sys.argv[1]), 1):
    try:
        if '"resourceSpans"' in line:
            request = json_format.Parse(line, ExportTraceServiceRequest())
            spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        else:
            request = json_format.Parse(line, ExportLogsServiceRequest())
            logs += sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
    except json_format.ParseError as error:
        print(json.dumps({"error": f"line {number}: {error}"}))
        sys.exit(1)
print(json.dumps({"spans": spans, "logs": logs}))
