#!/usr/bin/env bash
# Instructions and heap allocations per emitted record on the emitting thread, under valgrind:
# each shape runs with 20,000 and 120,000 records; the difference over 100,000 is one record.
# usage: Benchmarks/Instructions/measure.sh   (make bench-instructions)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command -v valgrind >/dev/null || { echo "bench-instructions: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
swift build -c release --package-path "$here" --scratch-path "$here/../../.build-instructions" >/dev/null
binary="$here/../../.build-instructions/release/EmitInstructions"
# Swift seeds its hashing per process: with dictionaries on the path (withSpan's attributes, swift-log's
# metadata) a shape's count moved by ±200 instructions from run to run; a fixed seed makes it repeat.
export SWIFT_DETERMINISTIC_HASHING=1
# valgrind cannot read the DWARF Swift 6 writes; the symbol table is enough.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$binary" "$work/emit" && strip -g "$work/emit"
# Instructions are the emitting thread's; allocations the whole process's, drained to the end (the
# drain and export threads allocate per batch: ~0.03 per span with 512-span batches).
printf '| record | instructions / record (emitting thread) | heap allocations / record (whole process) |\n|---|---|---|\n'
for shape in span floor log withspan withspan-noop swiftlog swiftlog-noop swiftlog-request swiftlog-request-noop counter timer exponential; do
    declare -A ir allocs
    for n in 20000 120000; do
        valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$work/cg-$shape-$n" "$work/emit" $n $shape >/dev/null 2>&1
        ir[$n]=$(awk '/^totals:/ {print $2}' "$work/cg-$shape-$n-01")
        allocs[$n]=$(valgrind --tool=memcheck --leak-check=no "$work/emit" $n $shape 2>&1 | sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' | tr -d ,)
    done
    case $shape in
        span) label="span, 5 attributes" ;;
        floor) label="the same span in plain Swift, without the SDK (the floor: ids, 2 clock reads, encode, copy into a ring)" ;;
        log) label="log record, 3 attributes" ;;
        withspan) label="swift-distributed-tracing withSpan, 5 attributes, SpillwayTracer" ;;
        withspan-noop) label="the same through NoOpTracer (the API's own cost)" ;;
        swiftlog) label="swift-log info, 2 metadata values, SpillwayLogHandler" ;;
        swiftlog-noop) label="the same into a handler that discards (swift-log's own cost)" ;;
        swiftlog-request) label="per request as a server framework logs: a logger copy with a request id, info with 1 value" ;;
        swiftlog-request-noop) label="the same into a handler that discards" ;;
        counter) label="swift-metrics counter.increment(), 2 dimensions" ;;
        timer) label="swift-metrics timer.recordNanoseconds, 2 dimensions" ;;
        *) label="swift-metrics timer.recordNanoseconds, 2 dimensions, exponential histogram" ;;
    esac
    printf '| %s | %d | %s |\n' "$label" $(( (ir[120000] - ir[20000]) / 100000 )) \
        "$(awk -v a="${allocs[20000]}" -v b="${allocs[120000]}" 'BEGIN { x = (b - a) / 100000; if (x < 0.005) x = 0; printf "%.2f", x }')"
done
