#!/usr/bin/env bash
# How standalone mode holds up with many idle Canaries: for 1,000 and 10,000 Canaries (interval
# 10s, builtin metrics, each over its own endpoint group), start serin-testapp, meshproxy and
# `serin-controller standalone`, wait until every Canary is Initialized, let it settle, then watch
# the controller for a while: CPU (cores), resident memory, and how late its ticks run (from the
# controller's own `schedule` log lines). Goal at 10,000: on schedule, under 0.2 core, under 300 MB.
#
# Writes target/bench/standalone-scale.md. Everything listens on 127.0.0.1; every process is
# stopped at exit.
#
# Usage: e2e/bench/standalone-scale.sh [COUNT...]   (default: 1000 10000)
#        SERIN_BENCH_SECONDS=N sets the measured window (default 60).
#        SERIN_BENCH_PERF=1 also samples the controller with `perf record` during the window and
#        writes the hottest functions to target/bench/standalone-scale-COUNT.perf.txt.
#        SERIN_BENCH_KEEP=1 keeps the work folder (manifests, state, logs) for a look afterwards.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$ROOT/target/bench
MEASURE_SECONDS=${SERIN_BENCH_SECONDS:-60}
SETTLE_SECONDS=15
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1000 10000)
BASE_PORT=${SERIN_BENCH_BASE_PORT:-19180}
APP=127.0.0.1:$((BASE_PORT + 1))
PROXY=127.0.0.1:$((BASE_PORT + 2))
ADMIN=127.0.0.1:$((BASE_PORT + 3))

cd "$ROOT"
cargo build --release -j2 -p serin-controller -p serin-meshproxy -p serin-testapp \
    --bin serin-controller --bin meshproxy --bin serin-testapp
BIN=$TARGET/release
CLK_TCK=$(getconf CLK_TCK)

. "$ROOT/e2e/bench/lib.sh"

cpu_ticks() { # pid: user + system clock ticks so far
    awk '{print $14 + $15}' "/proc/$1/stat"
}

status_kb() { # pid field (VmRSS, VmHWM)
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}

manifests() { # folder count
    local folder=$1 count=$2 i
    mkdir -p "$folder"
    {
        echo "services:"
        for ((i = 0; i < count; i++)); do
            printf '  - {name: app%d-canary, namespace: bench, labels: {version: v1}, endpoints: [{address: "%s"}]}\n' "$i" "$APP"
        done
    } >"$folder/services.yaml"
    for ((i = 0; i < count; i++)); do
        printf -- '---\napiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata: {name: app%d, namespace: bench}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: app%d}\n  service: {port: 9898}\n  analysis:\n    interval: 10s\n    threshold: 5\n    stepWeight: 10\n    maxWeight: 50\n    metrics:\n      - {name: request-success-rate, interval: 1m, thresholdRange: {min: 99}}\n      - {name: request-duration, interval: 1m, thresholdRange: {max: 500}}\n' "$i" "$i"
    done >"$folder/canaries.yaml"
}

"$BIN/serin-testapp" --listen "$APP" --app-version v1 >"$WORK/testapp.log" 2>&1 &
STARTED+=($!)
wait_for "$APP" testapp

mkdir -p "$OUT"
ROWS=()
for count in "${COUNTS[@]}"; do
    folder=$WORK/manifests-$count
    manifests "$folder" "$count"
    echo "services: []" >"$WORK/meshproxy.yaml"
    "$BIN/meshproxy" run --config "$WORK/meshproxy.yaml" --listen "$PROXY" --admin "$ADMIN" >"$WORK/meshproxy.log" 2>&1 &
    mesh=$!
    STARTED+=("$mesh")
    wait_for "$ADMIN" meshproxy
    log=$WORK/controller-$count.log
    started_at=$(date +%s)
    "$BIN/serin-controller" standalone --manifests "$folder" --meshproxy-admin "http://$ADMIN" --api 127.0.0.1:0 >"$log" 2>&1 &
    controller=$!
    STARTED+=("$controller")

    # Every Canary Initialized: one file per Canary in the state folder says so.
    initialized=0
    for _ in $(seq 600); do
        kill -0 "$controller" 2>/dev/null || { echo "the controller exited; its log:" >&2; tail -20 "$log" >&2; exit 1; }
        initialized=$({ grep -rl '"phase": "Initialized"' "$folder/.serin/canaries" 2>/dev/null || true; } | wc -l)
        [ "$initialized" -ge "$count" ] && break
        sleep 1
    done
    init_seconds=$(($(date +%s) - started_at))
    [ "$initialized" -ge "$count" ] || { echo "only $initialized of $count Canaries initialized" >&2; exit 1; }
    sleep "$SETTLE_SECONDS"

    lines_before=$(wc -l <"$log")
    cpu_before=$(cpu_ticks "$controller")
    if [ "${SERIN_BENCH_PERF:-0}" = 1 ]; then
        perf record -F 499 -g -o "$WORK/perf-$count.data" -p "$controller" -- sleep "$MEASURE_SECONDS" >/dev/null 2>&1
    else
        sleep "$MEASURE_SECONDS"
    fi
    cpu_after=$(cpu_ticks "$controller")
    rss_kb=$(status_kb "$controller" VmRSS)
    hwm_kb=$(status_kb "$controller" VmHWM)
    # The schedule reports of the window: ticks per second, and the worst p50, p99 and maximum lateness.
    read -r ticks late50 late99 latemax < <(tail -n +"$((lines_before + 1))" "$log" | grep '"message":"schedule"' |
        sed -E 's/.*"ticks_per_second":([0-9.]+).*"late_p50_ms":([0-9]+).*"late_p99_ms":([0-9]+).*"late_max_ms":([0-9]+).*/\1 \2 \3 \4/' |
        awk '{t += $1; n++; if ($2 > a) a = $2; if ($3 > b) b = $3; if ($4 > c) c = $4} END {printf "%.1f %d %d %d\n", (n ? t / n : 0), a, b, c}')
    cores=$(awk -v t=$((cpu_after - cpu_before)) -v hz="$CLK_TCK" -v s="$MEASURE_SECONDS" 'BEGIN {printf "%.3f", t / hz / s}')
    due=$(awk -v c="$count" 'BEGIN {printf "%.1f", c / 10}')
    ROWS+=("| $count | ${init_seconds}s | $due | $ticks | $cores | $((rss_kb / 1024)) | $((hwm_kb / 1024)) | $late50 | $late99 | $latemax |")
    echo "${ROWS[-1]}"
    if [ "${SERIN_BENCH_PERF:-0}" = 1 ]; then
        perf report -i "$WORK/perf-$count.data" --no-children --percent-limit 1 --stdio 2>/dev/null |
            grep -E '^ +[0-9]' >"$OUT/standalone-scale-$count.perf.txt" || true
    fi
    kill "$controller" "$mesh" 2>/dev/null || true
    wait "$controller" "$mesh" 2>/dev/null || true
done

{
    echo "Standalone mode with idle Canaries (interval 10s), measured over ${MEASURE_SECONDS}s after all were Initialized"
    echo
    echo "| Canaries | all Initialized after | ticks/s due | ticks/s run | CPU (cores) | RSS (MB) | peak RSS (MB) | late p50 (ms) | late p99 (ms) | late max (ms) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${ROWS[@]}"
} | tee "$OUT/standalone-scale.md"
