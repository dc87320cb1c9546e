#!/usr/bin/env python3
"""An independent reader of Spillway spill segments (DESIGN.md "Spill format, version 1").

Parses every segment given (files, or directories holding *.spill / *.open), checks both CRC32Cs
of each frame with its own CRC table, decompresses the payload with the `zstandard` package, and
parses it with the official `opentelemetry-proto` messages. Prints one JSON object:
{"segments": [...], "frames": [{"segment", "batch_sequence", "records", "parsed_records",
"payload_crc32c"}], "errors": [...]}. Exit status 0 when there are no errors.
"""
import json
import os
import struct
import sys

import zstandard
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    TABLE.append(c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def read_segment(path, out):
    data = open(path, "rb").read()
    if len(data) < 32 or data[:8] != b"SPILLWAY":
        out["errors"].append(f"{path}: not a segment")
        return
    version, signal, flags, sequence, created = struct.unpack_from("<HHIQQ", data, 8)
    out["segments"].append({"path": os.path.basename(path), "version": version, "signal": signal, "sequence": sequence})
    at = 32
    while at < len(data):
        if len(data) - at < 32:
            out["errors"].append(f"{path}@{at}: torn header")
            return
        magic = data[at:at + 4]
        header_crc = struct.unpack_from("<I", data, at + 28)[0]
        if crc32c(data[at:at + 28]) != header_crc:
            out["errors"].append(f"{path}@{at}: header CRC")
            return
        if magic == b"PAD1":
            at += 32 + struct.unpack_from("<I", data, at + 4)[0]
            continue
        if magic != b"FRM1":
            out["errors"].append(f"{path}@{at}: magic {magic!r}")
            return
        clen, ulen, records, batch = struct.unpack_from("<IIIQ", data, at + 4)
        payload_crc = struct.unpack_from("<I", data, at + 24)[0]
        payload = data[at + 32:at + 32 + clen]
        if len(payload) != clen or crc32c(payload) != payload_crc:
            out["errors"].append(f"{path}@{at}: payload CRC")
            return
        raw = zstandard.ZstdDecompressor().decompress(payload, max_output_size=ulen)
        if len(raw) != ulen:
            out["errors"].append(f"{path}@{at}: {len(raw)} bytes, header says {ulen}")
            return
        if signal == 1:
            request = ExportTraceServiceRequest.FromString(raw)
            parsed = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        else:
            request = ExportLogsServiceRequest.FromString(raw)
            parsed = sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
        out["frames"].append({"segment": sequence, "batch_sequence": batch, "records": records,
                              "parsed_records": parsed, "payload_crc32c": crc32c(raw)})
        at += 32 + clen


def main():
    out = {"segments": [], "frames": [], "errors": []}
    paths = []
    for arg in sys.argv[1:]:
        if os.path.isdir(arg):
            paths += sorted(os.path.join(arg, n) for n in os.listdir(arg) if n.endswith((".spill", ".open")))
        else:
            paths.append(arg)
    for path in paths:
        read_segment(path, out)
    print(json.dumps(out))
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
