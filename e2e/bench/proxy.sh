#!/usr/bin/env bash
# Compares meshproxy with nginx and HAProxy in one run on this machine: each routes the same 90/10
# split over two serin-testapp backends answering 1 KiB, with one worker thread. serin-loadgen
# drives each at 1,000 and 5,000 requests/s over keep-alive HTTP/1.1, measuring latency from when
# every request was due (no coordinated omission), then at maximum throughput. A direct connection
# to a backend is the baseline the added latency is measured against.
#
# The machines this runs on are shared and noisy: every measure is run in SERIN_BENCH_ROUNDS
# interleaved rounds (3 by default; each round runs every target at every rate, so a noisy minute
# touches all targets alike) and reported as the median with its spread. The proxies run on core
# 0, the backends and the load generator on core 1 (`taskset`), so what is measured as a proxy's
# CPU is not taken from it by the load.
#
# Writes target/bench/proxy.md (the table), target/bench/proxy.json (runs and reports) and
# target/bench/proxy-runs.jsonl. Everything listens on 127.0.0.1; every process is stopped at exit.
#
# Usage: e2e/bench/proxy.sh            (SERIN_BENCH_SECONDS=N sets the length of each run, default 10;
#                                       SERIN_BENCH_ROUNDS=N the rounds, default 3)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/target/bench
RUN_SECONDS=${SERIN_BENCH_SECONDS:-10}
WARMUP_SECONDS=2
CONNECTIONS=32
MAX_CONNECTIONS=64
RATES=(1000 5000)
ROUNDS=${SERIN_BENCH_ROUNDS:-3}
PATH_1K=/bytes/1024
BASE_PORT=${SERIN_BENCH_BASE_PORT:-19080}
V1=127.0.0.1:$((BASE_PORT + 1))
V2=127.0.0.1:$((BASE_PORT + 2))
MESHPROXY=127.0.0.1:$((BASE_PORT + 10))
MESHPROXY_ADMIN=127.0.0.1:$((BASE_PORT + 11))
NGINX=127.0.0.1:$((BASE_PORT + 12))
HAPROXY=127.0.0.1:$((BASE_PORT + 13))

if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
    echo "installing nginx and haproxy (Debian packages)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light haproxy >/dev/null
fi
NGINX_BIN=$(command -v nginx)
HAPROXY_BIN=$(command -v haproxy)

cd "$ROOT"
cargo build --release -j2 -p serin-meshproxy -p serin-testapp -p serin-e2e --bin meshproxy --bin serin-testapp --bin serin-loadgen
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

. "$ROOT/e2e/bench/lib.sh"

# Core 0 for the proxies, core 1 for everything that loads them (no pinning on one core).
PROXY_CORE=()
LOAD_CORE=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    PROXY_CORE=(taskset -c 0)
    LOAD_CORE=(taskset -c 1)
fi

start backend-v1 "${LOAD_CORE[@]}" "$BIN/serin-testapp" --listen "$V1" --app-version v1
start backend-v2 "${LOAD_CORE[@]}" "$BIN/serin-testapp" --listen "$V2" --app-version v2
wait_for "$V1" backend-v1
wait_for "$V2" backend-v2

split_config 90 10 "{address: \"$V1\"}" "{address: \"$V2\"}" >"$WORK/meshproxy.yaml"
start meshproxy "${PROXY_CORE[@]}" "$BIN/meshproxy" run --config "$WORK/meshproxy.yaml" --listen "$MESHPROXY" --admin "$MESHPROXY_ADMIN" --workers 1
MESHPROXY_PID=${STARTED[-1]}

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream app {
        server $V1 weight=9;
        server $V2 weight=1;
        keepalive 64;
    }
    server {
        listen $NGINX;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
}
CONF
start nginx "${PROXY_CORE[@]}" "$NGINX_BIN" -c "$WORK/nginx.conf" -p "$WORK/nginx"
NGINX_MASTER=${STARTED[-1]}

cat >"$WORK/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend app
    bind $HAPROXY
    default_backend app
backend app
    balance roundrobin
    server v1 $V1 weight 90
    server v2 $V2 weight 10
CFG
start haproxy "${PROXY_CORE[@]}" "$HAPROXY_BIN" -f "$WORK/haproxy.cfg" -db
HAPROXY_PID=${STARTED[-1]}

wait_for "$MESHPROXY" meshproxy
wait_for "$NGINX" nginx
wait_for "$HAPROXY" haproxy
NGINX_PIDS=$(echo "$NGINX_MASTER" $(pgrep -P "$NGINX_MASTER") | tr ' ' ',')

mkdir -p "$OUT"
RESULTS=$OUT/proxy-runs.jsonl
: >"$RESULTS"
run_one() { # label address host pids rate (0: maximum)
    local label=$1 address=$2 host=$3 pids=$4 rate=$5 connections=$CONNECTIONS
    [ "$rate" = 0 ] && connections=$MAX_CONNECTIONS
    "${LOAD_CORE[@]}" "$BIN/serin-loadgen" run --label "$label" --target "$address" --host "$host" --path "$PATH_1K" \
        --rate "$rate" --warmup-seconds "$WARMUP_SECONDS" --seconds "$RUN_SECONDS" \
        --connections "$connections" ${pids:+--pids "$pids"} >>"$RESULTS"
}

echo "measuring: $ROUNDS rounds, ${RUN_SECONDS}s per run after ${WARMUP_SECONDS}s of warmup" >&2
for round in $(seq "$ROUNDS"); do
    for rate in "${RATES[@]}" 0; do
        echo "  round $round at $([ "$rate" = 0 ] && echo 'maximum' || echo "$rate req/s")" >&2
        run_one direct "$V1" app "" "$rate"
        run_one meshproxy "$MESHPROXY" app.bench "$MESHPROXY_PID" "$rate"
        run_one nginx "$NGINX" app "$NGINX_PIDS" "$rate"
        run_one haproxy "$HAPROXY" app "$HAPROXY_PID" "$rate"
    done
done

{
    echo "# meshproxy vs nginx vs HAProxy: 90/10 split, 1 KiB responses, one worker each"
    echo
    echo "Added latency is each proxy's percentile minus the direct connection's at the same rate,"
    echo "measured from when each request was due. CPU and peak RSS are the proxy's own processes."
    [ ${#PROXY_CORE[@]} -gt 0 ] && echo "Proxies on core 0; backends and the load generator on core 1."
    echo "$(nproc) cores, $(uname -r), $("$NGINX_BIN" -v 2>&1 | sed 's/.*: //'), $("$HAPROXY_BIN" -v | head -1 | cut -d' ' -f1-3)."
    echo
    "$BIN/serin-loadgen" report "$RESULTS" --json "$OUT/proxy.json"
} | tee "$OUT/proxy.md"
