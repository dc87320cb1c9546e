#!/usr/bin/env python3
"""An independent OTLP/HTTP receiver over TLS (Python's ssl, i.e. OpenSSL; not Spillway's code).

Usage: https_receiver.py CERT_DIR EXPECTED_SPANS TIMEOUT_SECONDS

Listens on localhost with CERT_DIR/server.pem, requires a client certificate signed by
CERT_DIR/ca.pem (mutual TLS), prints "port N" on the first line, then decodes every
/v1/traces body with opentelemetry-proto until it has seen EXPECTED_SPANS spans or the timeout
passes. Prints one JSON line: spans, unique `spillway.load.seq` values, the client
certificate's common name and the SNI name the client sent. Exits 0 if every expected span came.
"""
import http.server
import json
import ssl
import sys
import threading
import time

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

cert_dir, expected, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
seen = {"spans": 0, "seqs": set(), "client": None, "sni": None, "requests": 0}
lock = threading.Lock()
done = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        peer = self.connection.getpeercert()
        with lock:
            seen["requests"] += 1
            seen["client"] = dict(x[0] for x in peer["subject"]).get("commonName") if peer else None
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        seen["spans"] += 1
                        for kv in span.attributes:
                            if kv.key == "spillway.load.seq":
                                seen["seqs"].add(kv.value.int_value)
            if seen["spans"] >= expected:
                done.set()
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert_dir + "/server.pem", cert_dir + "/server.key")
context.load_verify_locations(cert_dir + "/ca.pem")
context.verify_mode = ssl.CERT_REQUIRED


def remember_sni(sock, name, ctx):
    seen["sni"] = name


context.sni_callback = remember_sni
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("port", server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
done.wait(timeout)
time.sleep(0.2)
with lock:
    result = {"spans": seen["spans"], "unique": len(seen["seqs"]), "client": seen["client"], "sni": seen["sni"],
              "requests": seen["requests"]}
print(json.dumps(result), flush=True)
sys.exit(0 if result["unique"] >= expected else 1)
