#!/usr/bin/env bash
# make bench-service: a Hummingbird 2 service (TracingMiddleware + one logger.info per request)
# loaded by wrk, with no telemetry back end, with Spillway and with swift-otel 1.6.0, each exporting
# OTLP/HTTP to the embedded receiver (`spillway receive`), in ROUNDS interleaved rounds.
#
# Per run: requests/s and p99 from wrk (WRK_THREADS threads, CONNECTIONS connections, DURATION, after
# a WARMUP run), the service's CPU time per request and peak RSS (/proc), and what the receiver got
# against what the service served (every request is one span and one log record). Prints one row per
# run and the medians; writes them to Benchmarks/service-report.txt.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
PORT=${PORT:-18080}
BACKENDS=${BACKENDS:-none spillway swift-otel}
SWIFT=${SWIFT:-swift}

root=$(cd "$(dirname "$0")/../.." && pwd)
exec 4>&2  # standard error, for what a check run with its own stderr silenced must say
report="$root/Benchmarks/service-report.txt"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

command -v wrk >/dev/null || {
    echo "make bench-service: installing Debian package: wrk"
    ${SUDO:-} apt-get update -qq && DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq wrk < /dev/null
}
echo "building the service (release; Hummingbird and swift-otel take minutes the first time) and the receiver"
# Both from the benchmarks package's build folder: one release build of the shared packages.
$SWIFT build -c release --package-path "$root/Benchmarks" --product ServiceBench
$SWIFT build -c release --package-path "$root/Benchmarks" --product spillway
service="$root/Benchmarks/.build/release/ServiceBench"
spillway="$root/Benchmarks/.build/release/spillway"

# wait_for WHAT SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds, or fails the run.
wait_for() {
    local what=$1 seconds=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" 2>/dev/null; do
        if ((SECONDS >= deadline)); then echo "bench-service: no $what after ${seconds}s" >&2; exit 1; fi
        sleep 0.1
    done
}
# wait_exit PID SECONDS: waits for a process to end, or fails the run.
wait_exit() {
    local deadline=$((SECONDS + $2))
    while kill -0 "$1" 2>/dev/null; do
        if ((SECONDS >= deadline)); then echo "bench-service: process $1 still running after $2 s" >&2; exit 1; fi
        sleep 0.1
    done
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f %%", (b > 0 ? 100 * a / b : 0) }'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

if port_open; then echo "bench-service: something already listens on 127.0.0.1:$PORT; set PORT to a free port" >&2; exit 1; fi
ticks=$(getconf CLK_TCK)
rows="$work/rows"
: > "$rows"
printf "%-10s %5s %12s %9s %12s %9s %9s %14s %14s\n" backend round requests/s p99 "cpu µs/req" "rss MB" served \
    "spans recv" "logs recv"
for round in $(seq 1 "$ROUNDS"); do
    for backend in $BACKENDS; do
        "$spillway" receive --port 0 --every 3600 > "$work/receiver.out" 2>&1 &
        receiver=$!
        wait_for "receiver endpoint" 30 grep -q "receiving on" "$work/receiver.out"
        endpoint=$(sed -n 's/^receiving on \(http[^ ]*\).*/\1/p' "$work/receiver.out")
        OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint "$service" --backend "$backend" --port "$PORT" > "$work/service.out" 2>&1 &
        pid=$!
        # Up when its port answers; a service that exits at start (a bad back end name) is said at once.
        service_up() { kill -0 "$pid" 2>/dev/null || { echo "bench-service: the $backend service exited at start:" >&4; \
            cat "$work/service.out" >&4; exit 1; }; port_open; }
        wait_for "service on port $PORT" 60 service_up
        wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" "http://127.0.0.1:$PORT/cart" > /dev/null
        before=$(cpu_ticks "$pid")
        wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/cart" > "$work/wrk.out"
        after=$(cpu_ticks "$pid")
        rss=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")
        kill -TERM "$pid"
        wait_exit "$pid" 60
        kill -INT "$receiver"
        wait_exit "$receiver" 30
        rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$work/wrk.out")
        requests=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
        p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk.out")
        errors=$(grep -E "Socket errors|Non-2xx" "$work/wrk.out" | tr -s ' ' | paste -sd ';' || true)
        served=$(sed -n 's/^served=\([0-9]*\).*/\1/p' "$work/service.out")
        spans=$(sed -n 's/^requests=[0-9]* spans=\([0-9]*\).*/\1/p' "$work/receiver.out" | tail -1)
        logs=$(sed -n 's/^requests=[0-9]* spans=[0-9]* logs=\([0-9]*\).*/\1/p' "$work/receiver.out" | tail -1)
        cpu=$(awk -v t=$((after - before)) -v hz="$ticks" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
        if [ -z "$served" ]; then echo "bench-service: the $backend service did not report (its output follows)" >&2; cat "$work/service.out" >&2; exit 1; fi
        printf "%-10s %5s %12s %9s %12s %9s %9s %14s %14s %s\n" "$backend" "$round" "$rps" "$p99" "$cpu" "$rss" "$served" \
            "$spans ($(pct "$spans" "$served"))" "$logs ($(pct "$logs" "$served"))" "$errors"
        echo "$backend $rps $p99 $cpu $rss $served $spans $logs" >> "$rows"
        grep -E "^served=" "$work/service.out" | sed 's/^/    /' | grep -v "^    served=[0-9]*$" || true
    done
done

# Medians per back end (p99 compared in milliseconds).
{
    echo
    echo "medians of $ROUNDS rounds (wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores, $(date -u +%F)):"
    printf "| back end | requests/s | vs none | p99 | CPU µs/request | peak RSS MB | spans delivered | log records delivered |\n"
    printf "|---|---|---|---|---|---|---|---|\n"
    for backend in $BACKENDS; do
        python3 - "$rows" "$backend" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.split()[0] == sys.argv[2]]
def ms(v):
    return float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
base = [float(l.split()[1]) for l in open(sys.argv[1]) if l.split()[0] == "none"]
rps = statistics.median(float(r[1]) for r in rows)
vs = f"{100 * (rps / statistics.median(base) - 1):+.0f} %" if base and sys.argv[2] != "none" else "—"
p99 = statistics.median(ms(r[2]) for r in rows)
cpu = statistics.median(float(r[3]) for r in rows)
rss = statistics.median(float(r[4]) for r in rows)
served = sum(int(r[5]) for r in rows)
spans = sum(int(r[6] or 0) for r in rows)
logs = sum(int(r[7] or 0) for r in rows)
deliv = lambda n: "—" if sys.argv[2] == "none" else f"{100 * n / served:.1f} % ({n:,} of {served:,})"
print(f"| {sys.argv[2]} | {rps:,.0f} | {vs} | {p99:.2f} ms | {cpu:.1f} | {rss:.0f} | {deliv(spans)} | {deliv(logs)} |")
PY
    done
} | tee "$report"
