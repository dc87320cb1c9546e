#!/usr/bin/env python3
"""Checks OTLP metrics requests written by Spillway with the official opentelemetry-proto package.

Usage: check_metrics.py EXPECTED.json BODY.bin [BODY.bin ...]

The bodies are serialized ExportMetricsServiceRequests, in the order the collector received them.
EXPECTED.json, written by the Swift test from the values it recorded (not from Spillway's decoder):

  {"resource": {"service.name": {"string": "…"}},
   "points": [{"name": "orders", "attributes": {"region": "eu"}, "last": {field: value, …}}, …],
   # an exponential histogram's point may also list the values recorded into it and its MaxSize:
   #   {"name": …, "values": [0.002, …], "max_size": 160, "last": {…}}
   "ordered": ["ticks", …],          # optional: cumulative series that must arrive in time order
   "total_points": N}                 # optional: the data points of all bodies together

For each expected point, the last data point received with that name and those attributes must
have every listed field: kind (gauge|sum|histogram), unit, temporality (1 delta, 2 cumulative),
monotonic, value, count, sum, bucket_counts, bounds, min, max, scope, scale, zero_count. With "values", the
point's buckets must be exactly those values' buckets at the point's scale, computed here with exact
rational arithmetic (bucket i holds (2^(i/2^scale), 2^((i+1)/2^scale)]), each sign holding at most
"max_size" buckets, and the count must be the zero count plus the buckets. Every data point must have a
time; sums and histograms a start time no later than it. For an "ordered" series, in arrival order,
times strictly increase, cumulative values never decrease and the start time never changes: what a
back end that takes points in time order needs after an outage. Prints each mismatch; exits 1 if any.
"""
import json
import sys
from fractions import Fraction

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2


def any_value(v):
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    return None


def buckets(side):
    """One sign's buckets as {index: count}, the empty ones left out."""
    return {side.offset + i: n for i, n in enumerate(side.bucket_counts) if n}


def exponential_index(value, scale):
    """The bucket of |value| at `scale`, exactly: i with 2^(i/2^scale) < |value| <= 2^((i+1)/2^scale)."""
    x = Fraction(abs(value))
    if scale > 0:
        x = x ** (2 ** scale)  # then 2^i < x <= 2^(i+1)
    i = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** i >= x:
        i -= 1
    while Fraction(2) ** (i + 1) < x:
        i += 1
    return i >> -scale if scale < 0 else i


def check_exponential(want, got, problems):
    label = f"{want['name']} {want.get('attributes', {})}"
    scale = got.get("scale")
    if scale is None:
        problems.append(f"{label}: not an exponential histogram")
        return
    expected = {"positive": {}, "negative": {}}
    zero = 0
    for v in want["values"]:
        if v == 0:
            zero += 1
            continue
        side = expected["positive" if v > 0 else "negative"]
        i = exponential_index(v, scale)
        side[i] = side.get(i, 0) + 1
    if got["zero_count"] != zero:
        problems.append(f"{label}: zero_count {got['zero_count']}, expected {zero}")
    for name in ("positive", "negative"):
        if got[name] != expected[name]:
            problems.append(f"{label}: {name} buckets at scale {scale} {got[name]}, expected {expected[name]}")
        if got[name] and max(got[name]) - min(got[name]) + 1 > want.get("max_size", 160):
            problems.append(f"{label}: {name} spans {max(got[name]) - min(got[name]) + 1} buckets, over {want.get('max_size', 160)}")
    total = got["zero_count"] + sum(got["positive"].values()) + sum(got["negative"].values())
    if got["count"] != total:
        problems.append(f"{label}: count {got['count']} but buckets hold {total}")


def points_of(body):
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    request.ParseFromString(body)
    out = []
    for rm in request.resource_metrics:
        resource = {kv.key: any_value(kv.value) for kv in rm.resource.attributes}
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                data = getattr(m, kind)
                for p in data.data_points:
                    point = {
                        "name": m.name, "unit": m.unit, "kind": kind, "scope": sm.scope.name, "resource": resource,
                        "attributes": {kv.key: any_value(kv.value) for kv in p.attributes},
                        "start": p.start_time_unix_nano, "time": p.time_unix_nano,
                    }
                    if kind in ("sum", "histogram", "exponential_histogram"):
                        point["temporality"] = data.aggregation_temporality
                    if kind == "sum":
                        point["monotonic"] = data.is_monotonic
                    if kind == "histogram":
                        point.update(count=p.count, sum=p.sum, bucket_counts=list(p.bucket_counts),
                                     bounds=list(p.explicit_bounds), min=p.min if p.HasField("min") else None,
                                     max=p.max if p.HasField("max") else None)
                    elif kind == "exponential_histogram":
                        point.update(count=p.count, sum=p.sum, scale=p.scale, zero_count=p.zero_count,
                                     positive=buckets(p.positive), negative=buckets(p.negative),
                                     min=p.min if p.HasField("min") else None, max=p.max if p.HasField("max") else None)
                    else:
                        point["value"] = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                    out.append(point)
    return out


def main():
    expected = json.load(open(sys.argv[1]))
    points = []
    for path in sys.argv[2:]:
        points += points_of(open(path, "rb").read())
    problems = []
    for p in points:
        if p["time"] == 0:
            problems.append(f"{p['name']}: a point without a time")
        if p["kind"] in ("sum", "histogram", "exponential_histogram") and not (0 < p["start"] <= p["time"]):
            problems.append(f"{p['name']}: start {p['start']} not in (0, time {p['time']}]")
        for key, value in expected.get("resource", {}).items():
            if p["resource"].get(key) != value:
                problems.append(f"{p['name']}: resource[{key}] = {p['resource'].get(key)!r}, expected {value!r}")
    for want in expected.get("points", []):
        matching = [p for p in points if p["name"] == want["name"] and p["attributes"] == want.get("attributes", {})]
        if not matching:
            problems.append(f"no point for {want['name']} {want.get('attributes', {})}")
            continue
        got = matching[-1]
        for field, value in want["last"].items():
            have = got.get(field)
            if isinstance(value, float) and isinstance(have, (int, float)):
                ok = abs(have - value) <= 1e-9 * max(1.0, abs(value))
            else:
                ok = have == value
            if not ok:
                problems.append(f"{want['name']} {want.get('attributes', {})} {field}: expected {value!r}, decoded {have!r}")
        if "values" in want:
            check_exponential(want, got, problems)
    for name in expected.get("ordered", []):
        series = [p for p in points if p["name"] == name]
        for a, b in zip(series, series[1:]):
            if b["time"] <= a["time"]:
                problems.append(f"{name}: a point at {b['time']} arrived after one at {a['time']}")
            # A cumulative histogram's count, like a sum's value, never falls.
            level = "value" if b["kind"] == "sum" else "count"
            if b.get("temporality") == 2 and b[level] < a[level]:
                problems.append(f"{name}: cumulative {level} fell from {a[level]} to {b[level]}")
            if b.get("temporality") == 2 and b["start"] != a["start"]:
                problems.append(f"{name}: start time changed from {a['start']} to {b['start']}")
        print(f"{name}: {len(series)} points in arrival order")
    if "total_points" in expected and len(points) != expected["total_points"]:
        problems.append(f"expected {expected['total_points']} data points in all, decoded {len(points)}")
    for p in problems:
        print(p)
    print(f"checked {len(points)} metric data points with opentelemetry-proto: {len(problems)} mismatches")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
