#!/usr/bin/env python3
"""An independent OTLP/gRPC receiver (grpcio and opentelemetry-proto's service stubs; not Spillway's code).

Usage: grpc_receiver.py EXPECTED_SPANS EXPECTED_LOGS TIMEOUT_SECONDS [CERT_DIR]

Serves TraceService/Export and LogsService/Export on 127.0.0.1 (plaintext, or TLS with
CERT_DIR/server.pem requiring a client certificate from CERT_DIR/ca.pem), prints "port N" first,
then decodes every request until every expected record came or the timeout passed. Prints one JSON
line: spans and logs received, unique `spillway.load.seq` values of each, the service.name seen
and the metadata key `x-tenant` seen. (grpcio inflates gzip-compressed messages itself and does not
show `grpc-encoding`.) Exits 0 if everything came.
"""
import json
import sys
import threading
import time
from concurrent import futures

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

expected_spans, expected_logs, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
cert_dir = sys.argv[4] if len(sys.argv) > 4 else None
lock = threading.Lock()
done = threading.Event()
seen = {"spans": 0, "logs": 0, "span_seqs": set(), "log_seqs": set(), "service": None, "tenant": None}


def note(context, resource):
    metadata = dict(context.invocation_metadata())
    seen["tenant"] = metadata.get("x-tenant", seen["tenant"])
    for kv in resource.attributes:
        if kv.key == "service.name":
            seen["service"] = kv.value.string_value


def seq(attributes):
    for kv in attributes:
        if kv.key == "spillway.load.seq":
            return kv.value.int_value
    return None


def check_done():
    if len(seen["span_seqs"]) >= expected_spans and len(seen["log_seqs"]) >= expected_logs:
        done.set()


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        with lock:
            for rs in request.resource_spans:
                note(context, rs.resource)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        seen["spans"] += 1
                        s = seq(span.attributes)
                        if s is not None:
                            seen["span_seqs"].add(s)
            check_done()
        return trace_service_pb2.ExportTraceServiceResponse()


class Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request, context):
        with lock:
            for rl in request.resource_logs:
                note(context, rl.resource)
                for sl in rl.scope_logs:
                    for record in sl.log_records:
                        seen["logs"] += 1
                        s = seq(record.attributes)
                        if s is not None:
                            seen["log_seqs"].add(s)
            check_done()
        return logs_service_pb2.ExportLogsServiceResponse()


server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
if cert_dir:
    read = lambda name: open(f"{cert_dir}/{name}", "rb").read()
    credentials = grpc.ssl_server_credentials(
        [(read("server.key"), read("server.pem"))], root_certificates=read("ca.pem"), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
else:
    port = server.add_insecure_port("127.0.0.1:0")
server.start()
print("port", port, flush=True)
done.wait(timeout)
time.sleep(0.2)
with lock:
    result = {
        "spans": seen["spans"], "logs": seen["logs"], "unique_spans": len(seen["span_seqs"]), "unique_logs": len(seen["log_seqs"]),
        "service": seen["service"], "tenant": seen["tenant"],
    }
print(json.dumps(result), flush=True)
server.stop(0)
sys.exit(0 if result["unique_spans"] >= expected_spans and result["unique_logs"] >= expected_logs else 1)
