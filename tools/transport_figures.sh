#!/usr/bin/env bash
# The README's transport figures: `spillway load` (release) to `spillway receive` on loopback, one
# row per transport — OTLP/HTTP plaintext, gzip and TLS; OTLP/gRPC plaintext and TLS — N spans each
# (default 2,000,000), blocking overflow, wall time of the whole load process and its peak RSS,
# and the CPU time each side spent: the sender's (user + system of the load process, what an
# application pays) and the receiver's during the run (on 2 cores the two compete, so the wall
# time of a transport whose receiver works harder is longer even when its sender works less).
#
#   swift build -c release --product spillway && tools/transport_figures.sh [RUNS]
#
# RATE=250000 emits at that many spans a second instead of as fast as possible: every transport
# keeps up, the wall time is N / RATE for all, and the CPU columns are what each costs a service
# at that load (without the time a blocked emitter spends waiting for room in the ring).
#
# ROWS='http plain|grpc plain' measures only the rows whose names match that extended regex.
#
# SPILLWAY=/path/to/spillway measures another build of the tool (an A/B of two commits).
# Test certificates are made fresh (Tests/tls/make_certs.py, with the venv of `make deps`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=${SPILLWAY:-$root/.build/release/spillway}
N=${N:-2000000}
[ -x "$B" ] || { echo "transport_figures: no spillway binary at $B (swift build -c release --product spillway, or SPILLWAY=)"; exit 2; }
rate=${RATE:-0}
[[ $rate =~ ^[0-9]+$ && $N =~ ^[0-9]+$ ]] || { echo "transport_figures: N and RATE are whole numbers (spans, spans a second)"; exit 2; }
runs=${1:-3}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "transport_figures: RUNS is a whole number >= 1"; exit 2; }
names=("http plain" "http gzip" "http tls" "grpc plain" "grpc tls")
matched=0
for name in "${names[@]}"; do [[ $name =~ ^(${ROWS:-.*})$ ]] && matched=1; done
[ $matched = 1 ] || { echo "transport_figures: ROWS='${ROWS}' matches none of the rows: $(IFS=,; echo "${names[*]}" | sed 's/,/, /g')"; exit 2; }
certs=$(mktemp -d)
trap 'rm -rf "$certs"' EXIT
"$root/.build/venv/bin/python3" "$root/Tests/tls/make_certs.py" "$certs" > /dev/null
row() { # name port receive-arguments… -- environment…
    local name=$1 port=$2; shift 2
    [[ $name =~ ^(${ROWS:-.*})$ ]] || return 0
    local receive=(); while [ "$1" != "--" ]; do receive+=("$1"); shift; done; shift
    "$B" receive --port "$port" --every 1000 "${receive[@]}" > /dev/null 2>&1 & local receiver=$!
    sleep 1
    local before; before=$(ticks $receiver)
    local out; out=$(env "$@" SPILLWAY_OVERFLOW=block:60000 /usr/bin/time -f "rss %M KB, wall %e s, sender cpu %U+%S s" "$B" load --spans "$N" --rate "$rate" --quiet 2>&1)
    local spent=$(( $(ticks $receiver) - before ))
    kill $receiver; wait $receiver 2>/dev/null || true
    echo "$name: $(echo "$out" | grep -E '^exported|^dropped|^rss' | tr -s ' ' | tr '\n' ' ')receiver cpu $(awk "BEGIN {print $spent / $hz}") s"
}
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system time of a process, in clock ticks
for _ in $(seq "$runs"); do
    row "http plain" 4401 -- OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4401
    row "http gzip" 4402 -- OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4402 OTEL_EXPORTER_OTLP_COMPRESSION=gzip
    row "http tls" 4403 --tls-certificate "$certs/server.pem" --tls-key "$certs/server.key" -- \
        OTEL_EXPORTER_OTLP_ENDPOINT=https://localhost:4403 OTEL_EXPORTER_OTLP_CERTIFICATE="$certs/ca.pem"
    row "grpc plain" 4404 --protocol grpc -- OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4404
    row "grpc tls" 4405 --protocol grpc --tls-certificate "$certs/server.pem" --tls-key "$certs/server.key" -- \
        OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT=https://localhost:4405 OTEL_EXPORTER_OTLP_CERTIFICATE="$certs/ca.pem"
done
