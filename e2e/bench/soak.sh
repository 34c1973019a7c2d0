#!/usr/bin/env bash
# Soaks meshproxy: 2,000 requests/s for ten minutes while its config changes every 100 ms (the
# canary's weight moves and an endpoint comes and goes), and the canary's only backend is killed
# and restarted every 30 s. Reports the requests that failed, split into those sent to the backend
# while it was down (expected) and all others (none expected), meshproxy's resident memory and open
# file descriptors after the first 15 s, once warm (after the first restart) and at the end (growth
# from warm under 5 % expected), and latency.
#
# Writes target/bench/soak.md, and every 5-second sample (seconds, RSS KiB, fds) to soak-rss.tsv. Everything listens on 127.0.0.1; every process is stopped at exit.
#
# Usage: e2e/bench/soak.sh   (SERIN_SOAK_SECONDS=N sets the length, default 600;
#                             SERIN_BENCH_PROFILE=debug skips the release build)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/target/bench
SECONDS_TOTAL=${SERIN_SOAK_SECONDS:-600}
RATE=2000
PROFILE=${SERIN_BENCH_PROFILE:-release}
BASE_PORT=${SERIN_BENCH_BASE_PORT:-19280}
A1=127.0.0.1:$((BASE_PORT + 1))
A2=127.0.0.1:$((BASE_PORT + 2))
A3=127.0.0.1:$((BASE_PORT + 3))
B=127.0.0.1:$((BASE_PORT + 4))
MESHPROXY=127.0.0.1:$((BASE_PORT + 10))
ADMIN=127.0.0.1:$((BASE_PORT + 11))

cd "$ROOT"
flag=--release
[ "$PROFILE" = debug ] && flag=
cargo build $flag -j2 -p serin-meshproxy -p serin-testapp -p serin-e2e --bin meshproxy --bin serin-testapp --bin serin-loadgen
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE

. "$ROOT/e2e/bench/lib.sh"
mkdir -p "$OUT"

start a1 "$BIN/serin-testapp" --listen "$A1" --app-version v1
start a2 "$BIN/serin-testapp" --listen "$A2" --app-version v1
start a3 "$BIN/serin-testapp" --listen "$A3" --app-version v1
"$BIN/serin-testapp" --listen "$B" --app-version v2 >"$WORK/b.log" 2>&1 &
B_PID=$!
for address in "$A1" "$A2" "$A3" "$B"; do wait_for "$address" backend; done

split_config 90 10 "{address: \"$A1\"}, {address: \"$A2\"}, {address: \"$A3\"}" "{address: \"$B\"}" >"$WORK/with-a3.yaml"
split_config 80 20 "{address: \"$A1\"}, {address: \"$A2\"}" "{address: \"$B\"}" >"$WORK/without-a3.yaml"

start meshproxy "$BIN/meshproxy" run --config "$WORK/with-a3.yaml" --listen "$MESHPROXY" --admin "$ADMIN" --workers 1
MESHPROXY_PID=${STARTED[-1]}
wait_for "$MESHPROXY" meshproxy

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$MESHPROXY_PID/status"; }
fds() { ls "/proc/$MESHPROXY_PID/fd" | wc -l; }
# Requests meshproxy answered with 5xx, by backend, from its own metrics.
server_errors() { # backend
    curl -fsS "http://$ADMIN/metrics" |
        awk -v backend="$1" '/^meshproxy_requests_total\{/ && index($0, "backend=\"" backend "\"") && /class="5xx"/ {sum += $NF} END {print sum + 0}'
}

"$BIN/serin-loadgen" run --label soak --target "$MESHPROXY" --host app.bench --path / \
    --rate "$RATE" --warmup-seconds 5 --seconds "$((SECONDS_TOTAL - 5))" --connections 32 \
    --pids "$MESHPROXY_PID" >"$WORK/result.json" 2>"$WORK/loadgen.log" &
LOADGEN=$!
STARTED+=($LOADGEN)

sleep 15
RSS_START=$(rss_kib); FDS_START=$(fds)
PRIMARY_ERRORS_START=$(server_errors app-primary); CANARY_ERRORS_START=$(server_errors app-canary)

# A config change every 100 ms: the canary's weight and A3 come and go.
(
    n=0
    while kill -0 "$LOADGEN" 2>/dev/null; do
        file=$WORK/with-a3.yaml
        [ $((n % 2)) = 1 ] && file=$WORK/without-a3.yaml
        curl -fsS -X PUT --data-binary "@$file" "http://$ADMIN/config" >/dev/null || echo "config change $n refused" >&2
        n=$((n + 1))
        sleep 0.1
    done
    echo "$n" >"$WORK/changes"
) &
STARTED+=($!)

# The canary's backend is killed every 30 s and back 2 s later.
(
    restarts=0
    while kill -0 "$LOADGEN" 2>/dev/null; do
        sleep 28
        kill -0 "$LOADGEN" 2>/dev/null || break
        kill "$B_PID" 2>/dev/null || true
        wait "$B_PID" 2>/dev/null || true
        sleep 2
        "$BIN/serin-testapp" --listen "$B" --app-version v2 >>"$WORK/b.log" 2>&1 &
        B_PID=$!
        echo "$B_PID" >"$WORK/b.pid"
        restarts=$((restarts + 1))
        echo "$restarts" >"$WORK/restarts"
    done
) &
STARTED+=($!)

# The last sample before the load ends is the end state; one a minute shows whether memory climbs
# or levels off, and every sample goes to rss.tsv. The warm baseline is the first sample after the
# canary's backend has been restarted once: by then every kind of change (config swaps, an
# endpoint's failures and ejection, new upstream connections, the error series in the metrics)
# has happened and been paid for once, so growth from there is what a leak would show.
RSS_BY_MINUTE=()
RSS_WARM=
started=$(date +%s)
while kill -0 "$LOADGEN" 2>/dev/null; do
    RSS_END=$(rss_kib); FDS_END=$(fds)
    elapsed=$(( $(date +%s) - started ))
    printf '%s\t%s\t%s\n' "$elapsed" "$RSS_END" "$FDS_END" >>"$WORK/rss.tsv"
    minute=$(( elapsed / 60 ))
    [ "${#RSS_BY_MINUTE[@]}" -le "$minute" ] && RSS_BY_MINUTE+=("$RSS_END")
    [ -z "$RSS_WARM" ] && [ -f "$WORK/restarts" ] && RSS_WARM=$RSS_END
    PRIMARY_ERRORS_END=$(server_errors app-primary); CANARY_ERRORS_END=$(server_errors app-canary)
    sleep 5
done
wait "$LOADGEN" || true
[ -f "$WORK/b.pid" ] && kill "$(cat "$WORK/b.pid")" 2>/dev/null || true
kill "$B_PID" 2>/dev/null || true

cp "$WORK/rss.tsv" "$OUT/soak-rss.tsv"
python3 - "$WORK/result.json" "$OUT/soak.md" <<PY
import json, sys
result = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
down = $CANARY_ERRORS_END - $CANARY_ERRORS_START
others = result["errors"] - down
growth = 100.0 * ($RSS_END - $RSS_START) / $RSS_START
warm = ${RSS_WARM:-$RSS_START}
warm_growth = 100.0 * ($RSS_END - warm) / warm
lines = [
    "# meshproxy soak",
    "",
    f"{result['completed']} requests at {result['achieved_rps']:.0f}/s over ${SECONDS_TOTAL} s, "
    f"$(cat "$WORK/changes" 2>/dev/null || echo 0) config changes, $(cat "$WORK/restarts" 2>/dev/null || echo 0) restarts of the canary's backend.",
    "",
    "| measure | value |",
    "|---|---|",
    f"| requests failed | {result['errors']} |",
    f"| of them sent to the canary's backend while it was down (meshproxy's 5xx for app-canary) | {down} |",
    f"| all other failures (0 expected) | {others} |",
    f"| 5xx for app-primary (0 expected) | {$PRIMARY_ERRORS_END - $PRIMARY_ERRORS_START} |",
    f"| RSS after 15 s / at the end | {$RSS_START / 1024:.1f} MiB / {$RSS_END / 1024:.1f} MiB ({growth:+.1f} %) |",
    f"| RSS after the first restart of the canary's backend / at the end | {warm / 1024:.1f} MiB / {$RSS_END / 1024:.1f} MiB ({warm_growth:+.1f} %) |",
    f"| open file descriptors after 15 s / at the end | $FDS_START / $FDS_END |",
    "| RSS each minute, MiB | " + " ".join(f"{int(k) / 1024:.1f}" for k in "${RSS_BY_MINUTE[*]}".split()) + " |",
    f"| latency p50 / p99 / p99.9 / max | {result['p50_ms']:.2f} / {result['p99_ms']:.2f} / {result['p999_ms']:.2f} / {result['max_ms']:.1f} ms |",
]
text = "\n".join(lines) + "\n"
open(sys.argv[2], "w").write(text)
print(text)
PY
