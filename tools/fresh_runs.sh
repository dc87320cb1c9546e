#!/usr/bin/env bash
# Runs `make test` from fresh clones of one commit, one run after another, some of them with CPU
# hogs (`yes > /dev/null`) beside it: the reliability check of issue 10 §4.
#
#   tools/fresh_runs.sh COMMIT PLAN [LOGDIR]
#
# PLAN is a word per run, in order: `plain` or `hogs` (two hogs), e.g. "plain hogs plain plain hogs".
# Each run's whole output goes to LOGDIR/run-N-PLAN.log and a line per run to LOGDIR/summary
# (result, seconds). A run that fails does not stop the rest. Exits 1 when any run failed.
# Beside each run a watcher samples the clock and /proc/stat every second: the summary gives the
# longest gap between samples (a stall of the whole machine) and the CPU time stolen by the host.
set -u
commit=${1:?usage: tools/fresh_runs.sh COMMIT PLAN [LOGDIR]}
plan=${2:?usage: tools/fresh_runs.sh COMMIT PLAN [LOGDIR]}
logs=${3:-/tmp/fresh-runs-$commit}
# The repository to clone: this script's own, or REPOSITORY (for a copy of the script run from
# elsewhere, so that editing the checkout does not change a script bash is still reading).
repository=${REPOSITORY:-$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)} || exit 2
git -C "$repository" rev-parse --verify -q "$commit^{commit}" > /dev/null || { echo "fresh_runs: no commit $commit in $repository"; exit 2; }
# Every word of the plan is checked before the first run starts (a typo once started a whole run).
for kind in $plan; do
    case $kind in plain | hogs) ;; *) echo "fresh_runs: '$kind' is not a run kind (plain, hogs)"; exit 2 ;; esac
done
mkdir -p "$logs"
failed=0
n=0
for kind in $plan; do
    n=$((n + 1))
    work=$(mktemp -d)
    hogs=()
    if [ "$kind" = hogs ]; then
        for _ in 1 2; do yes > /dev/null & hogs+=($!); done
    fi
    start=$(date +%s)
    (while :; do echo "$(date +%s.%N) $(head -1 /proc/stat)"; sleep 1; done) > "$logs/run-$n-clock.log" &
    watcher=$!
    echo "run $n ($kind) of $commit started $(date -u +%H:%M:%S)" >> "$logs/summary"
    if git clone -q "$repository" "$work/fresh" && git -C "$work/fresh" checkout -q "$commit" \
        && (cd "$work/fresh" && make test) > "$logs/run-$n-$kind.log" 2>&1; then
        result=green
    else
        result=RED
        failed=1
    fi
    for pid in "${hogs[@]}" "$watcher"; do kill "$pid" 2> /dev/null; done
    # /proc/stat's cpu line: user nice system idle iowait irq softirq steal (USER_HZ ticks).
    clock=$(awk 'NR == 1 { first = $10 } { if (NR > 1 && $1 - t > gap) gap = $1 - t; t = $1; last = $10 }
        END { printf "longest gap between 1 s samples %.1f s, steal %.1f s", gap, (last - first) / 100 }' "$logs/run-$n-clock.log")
    echo "run $n ($kind): $result in $(($(date +%s) - start)) s ($clock)" >> "$logs/summary"
    rm -rf "$work"
done
exit $failed
