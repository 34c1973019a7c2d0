#!/usr/bin/env bash
# meshproxy at the size of a large mesh: configs of 10, 1,000 and 10,000 Services (two HTTPRoutes
# and five endpoints per Service: 20,000 routes and 50,000 endpoints at the top), each written as a
# file and loaded by `meshproxy run`. For each size: the time from start to ready, resident memory
# once ready (and per Service over the smallest), the time to apply one weight change and one
# whole-config swap through the admin API (median of 5), and the instructions per request routed
# to one of the Services (callgrind, through proxy-profile.sh), which must not grow with the size.
#
# Writes target/bench/proxy-scale.md. Everything listens on 127.0.0.1; every process is stopped at
# exit. Usage: e2e/bench/proxy-scale.sh   (SERIN_SCALE_SIZES="10 1000 10000" sets the sizes)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/target/bench
SIZES=(${SERIN_SCALE_SIZES:-10 1000 10000})
BASE_PORT=${SERIN_BENCH_BASE_PORT:-19480}
MESHPROXY=127.0.0.1:$((BASE_PORT + 10))
ADMIN=127.0.0.1:$((BASE_PORT + 11))
# proxy-profile.sh's backends, which the profiled Service's endpoints point at.
PROFILE_BASE_PORT=$((BASE_PORT + 100))

cd "$ROOT"
cargo build --release -j2 -p serin-meshproxy -p serin-testapp -p serin-e2e --bin meshproxy --bin serin-testapp \
    --bin serin-loadgen
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

. "$ROOT/e2e/bench/lib.sh"
mkdir -p "$OUT"

# A config of N Services: app-<i> with routes app-<i> (90/10 over app-<i>-primary and -canary) and
# app-<i>-header (x-canary: insider to the canary), 3 + 2 endpoints. Service 0 is `app` in
# namespace `bench`, pointing at the profile's backends, so proxy-profile.sh can drive it.
generate() { # services file
    python3 - "$1" "$2" "$PROFILE_BASE_PORT" <<'PY'
import json, sys
n, path, base = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
services, routes = [], []
for i in range(n):
    name, ns = ("app", "bench") if i == 0 else (f"app-{i}", f"ns-{i % 50}")
    if i == 0:
        primary = [{"address": f"127.0.0.1:{base + 1}"}]
        canary = [{"address": f"127.0.0.1:{base + 2}"}]
    else:
        octets = lambda k: f"10.{(i >> 8) & 255}.{i & 255}.{k}"
        primary = [{"address": f"{octets(k)}:8080"} for k in (1, 2, 3)]
        canary = [{"address": f"{octets(k)}:8080"} for k in (4, 5)]
    services += [
        {"name": name, "namespace": ns},
        {"name": f"{name}-primary", "namespace": ns, "labels": {"version": "v1"}, "endpoints": primary},
        {"name": f"{name}-canary", "namespace": ns, "labels": {"version": "v2"}, "endpoints": canary},
    ]
    parent = [{"group": "", "kind": "Service", "name": name}]
    routes.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                   "metadata": {"name": name, "namespace": ns},
                   "spec": {"parentRefs": parent, "rules": [{"backendRefs": [
                       {"name": f"{name}-primary", "port": 80, "weight": 90},
                       {"name": f"{name}-canary", "port": 80, "weight": 10}]}]}})
    routes.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                   "metadata": {"name": f"{name}-header", "namespace": ns},
                   "spec": {"parentRefs": parent, "rules": [{
                       "matches": [{"headers": [{"name": "x-canary", "value": "insider"}]}],
                       "backendRefs": [{"name": f"{name}-canary", "port": 80}]}]}})
json.dump({"services": services, "routes": routes}, open(path, "w"))
PY
}

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { tr ' ' '\n' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

ROWS=()
for size in "${SIZES[@]}"; do
    config=$WORK/config-$size.json
    generate "$size" "$config"
    bytes=$(stat -c %s "$config")
    started=$(date +%s%N)
    start "meshproxy-$size" "$BIN/meshproxy" run --config "$config" --listen "$MESHPROXY" --admin "$ADMIN" --workers 1
    pid=${STARTED[-1]}
    until curl -fsS "http://$ADMIN/ready" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/meshproxy-$size.log" >&2; exit 1; }
        sleep 0.02
    done
    ready_ms=$(ms_since "$started")
    rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    weights=() swaps=()
    for round in 1 2 3 4 5; do
        t=$(date +%s%N)
        curl -fsS -X PUT --data "{\"app-primary\": $((90 - round)), \"app-canary\": $((10 + round))}" \
            "http://$ADMIN/routes/bench/app/weights" >/dev/null
        weights+=("$(ms_since "$t")")
        t=$(date +%s%N)
        curl -fsS -X PUT --data-binary "@$config" "http://$ADMIN/config" >/dev/null
        swaps+=("$(ms_since "$t")")
    done
    rss_after_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    instructions=$(SERIN_BENCH_BASE_PORT=$PROFILE_BASE_PORT SERIN_PROFILE_CONFIG=$config SERIN_PROFILE_REQUESTS=2000 \
        "$ROOT/e2e/bench/proxy-profile.sh" 2>/dev/null | awk -F'[*][*]' '/instructions per request/ {print $2}' | awk '{print $1}')
    ROWS+=("$size $bytes $ready_ms $rss_kib $rss_after_kib $(echo "${weights[*]}" | median) $(echo "${swaps[*]}" | median) ${instructions:-?}")
done

python3 - "$OUT/proxy-scale.md" "${ROWS[@]}" <<'PY'
import sys
out, rows = sys.argv[1], [r.split() for r in sys.argv[2:]]
base_size, base_rss = int(rows[0][0]), int(rows[0][3])
lines = [
    "# meshproxy at scale: Services, two HTTPRoutes and five endpoints each",
    "",
    "| Services / routes / endpoints | config | start to ready | RSS ready / after 5 swaps | RSS per Service over the smallest | one weight change | whole-config swap | instructions per request |",
    "|---|---|---|---|---|---|---|---|",
]
for size, size_bytes, ready, rss, rss_after, weight, swap, instructions in rows:
    size, rss, rss_after = int(size), int(rss), int(rss_after)
    per = f"{(rss - base_rss) / (size - base_size):.1f} KiB" if size > base_size else "-"
    lines.append(f"| {size:,} / {2 * size:,} / {5 * size:,} | {int(size_bytes) / 1e6:.1f} MB | {int(ready):,} ms | "
                 f"{rss / 1024:.1f} / {rss_after / 1024:.1f} MiB | {per} | {weight} ms | {swap} ms | {instructions} |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
