#!/usr/bin/env python3
"""An independent reader of Spillway spill segments (FORMAT.md, "Spill format, version 1").

Parses every segment given (files, or directories holding *.spill / *.open / *.damaged), checks
both CRC32Cs of each frame with its own CRC table, that lengths stay inside the file and record
counts fit their payload, decompresses the payload with the `zstandard` package, and parses it
with the official `opentelemetry-proto` messages. After damage it resynchronises on the next
header whose CRC checks out (FORMAT.md), so frames after the damage are still read. Prints one JSON object:
{"segments": [...], "frames": [{"segment", "batch_sequence", "records", "parsed_records",
"payload_crc32c"}], "errors": [...]}. Exit status 0 when there are no errors.
"""
import json
import os
import struct
import sys

import zstandard
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
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


def header_ok(data, at):
    if len(data) - at < 32 or data[at:at + 4] not in (b"FRM1", b"PAD1"):
        return False
    return crc32c(data[at:at + 28]) == struct.unpack_from("<I", data, at + 28)[0]


def resync(data, at):
    """The next offset after `at` where a header checks out, or the end of the data."""
    at += 1
    while at + 32 <= len(data):
        f, p = data.find(b"FRM1", at), data.find(b"PAD1", at)
        candidates = [c for c in (f, p) if c >= 0]
        if not candidates:
            break
        at = min(candidates)
        if header_ok(data, at):
            return at
        at += 1
    return len(data)


def read_file(path):
    """A segment's bytes. One being written (`.open`) may be sealed — renamed to `.spill`, same
    sequence — by the process that writes it between the directory listing and the read: then
    it is read under its new name."""
    try:
        return open(path, "rb").read()
    except FileNotFoundError:
        if path.endswith(".open"):
            return open(path[: -len(".open")] + ".spill", "rb").read()
        raise


def read_segment(path, out):
    data = read_file(path)
    if len(data) < 32 or data[:8] != b"SPILLWAY":
        out["errors"].append(f"{path}: not a segment")
        return
    version, signal, flags, sequence, created = struct.unpack_from("<HHIQQ", data, 8)
    out["segments"].append({"path": os.path.basename(path), "version": version, "signal": signal, "flags": flags, "sequence": sequence})
    at = 32
    while at < len(data):
        if len(data) - at < 32:
            out["errors"].append(f"{path}@{at}: torn header")
            return
        if not header_ok(data, at):
            out["errors"].append(f"{path}@{at}: damaged header")
            at = resync(data, at)
            continue
        magic = data[at:at + 4]
        left = len(data) - at - 32
        if magic == b"PAD1":
            pad = struct.unpack_from("<I", data, at + 4)[0]
            if pad > left:
                out["errors"].append(f"{path}@{at}: padding beyond the end")
                at = resync(data, at)
                continue
            at += 32 + pad
            continue
        clen, ulen, records, batch = struct.unpack_from("<IIIQ", data, at + 4)
        payload_crc = struct.unpack_from("<I", data, at + 24)[0]
        # A length is bounded by the bytes left; a record count by the payload (2 bytes a record).
        if clen > left:
            out["errors"].append(f"{path}@{at}: length {clen} beyond the end")
            at = resync(data, at)
            continue
        if records * 2 > ulen:
            out["errors"].append(f"{path}@{at}: {records} records cannot fit in {ulen} bytes")
            at = resync(data, at)
            continue
        payload = data[at + 32:at + 32 + clen]
        if crc32c(payload) != payload_crc:
            out["errors"].append(f"{path}@{at}: payload CRC")
            at = resync(data, at)
            continue
        try:
            raw = zstandard.ZstdDecompressor().decompress(payload, max_output_size=ulen)
        except zstandard.ZstdError as error:
            out["errors"].append(f"{path}@{at}: zstd: {error}")
            at = resync(data, at)
            continue
        if len(raw) != ulen:
            out["errors"].append(f"{path}@{at}: {len(raw)} bytes, header says {ulen}")
            at = resync(data, at)
            continue
        if signal == 1:
            request = ExportTraceServiceRequest.FromString(raw)
            parsed = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        elif signal == 2:
            request = ExportLogsServiceRequest.FromString(raw)
            parsed = sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
        else:
            # Metrics: a frame's records are its data points.
            request = ExportMetricsServiceRequest.FromString(raw)
            parsed = sum(len(getattr(m, m.WhichOneof("data")).data_points)
                         for r in request.resource_metrics for s in r.scope_metrics for m in s.metrics if m.WhichOneof("data"))
        out["frames"].append({"segment": sequence, "offset": at, "batch_sequence": batch, "records": records,
                              "parsed_records": parsed, "payload_crc32c": crc32c(raw)})
        at += 32 + clen


def main():
    out = {"segments": [], "frames": [], "errors": []}
    paths = []
    for arg in sys.argv[1:]:
        if os.path.isdir(arg):
            paths += sorted(os.path.join(arg, n) for n in os.listdir(arg) if n.endswith((".spill", ".open", ".damaged")))
        else:
            paths.append(arg)
    for path in paths:
        read_segment(path, out)
    print(json.dumps(out))
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
