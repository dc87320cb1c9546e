#!/usr/bin/env python3
"""Parses a Prometheus text exposition with prometheus_client's parser (an independent
implementation) and prints every sample as one JSON object per line:
{"family": …, "type": …, "name": …, "labels": {…}, "value": …}. Exits 1 if the text does not parse.

Usage: check_prometheus.py EXPOSITION.txt
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = open(sys.argv[1]).read()
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                print(json.dumps({"family": family.name, "type": family.type, "name": sample.name,
                                  "labels": sample.labels, "value": sample.value}))
    except Exception as error:  # the parser raises ValueError and others on malformed text
        print(f"does not parse: {error!r}")
        sys.exit(1)


if __name__ == "__main__":
    main()
