#!/usr/bin/env bash
# Counts the instructions meshproxy executes per proxied request, under callgrind: a measure the
# noise of a shared machine does not move, to tell whether a change to the request path helped
# before keeping it. meshproxy (one worker) routes the benchmark's 90/10 split over two
# serin-testapp backends answering 1 KiB; after a warmup the counters are zeroed, N requests are
# sent over keep-alive HTTP/1.1, and the counters are dumped.
#
# Writes target/bench/proxy-profile.md: instructions per request, and the functions that executed
# the most of them (inclusive and self), from the dump that covers only the measured requests.
#
# Usage: e2e/bench/proxy-profile.sh [ARGS...]   (ARGS go to `meshproxy run`, e.g. --access-log on;
#        SERIN_PROFILE_REQUESTS=N sets N, default 4000; SERIN_PROFILE_CONFIG=FILE replaces the config,
#        whose backends must be 127.0.0.1:BASE+1 and BASE+2 and whose host is app.bench)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/target/bench
REQUESTS=${SERIN_PROFILE_REQUESTS:-4000}
# Slow enough that meshproxy under callgrind (about 50 times slower) keeps up.
RATE=400
BASE_PORT=${SERIN_BENCH_BASE_PORT:-19180}
V1=127.0.0.1:$((BASE_PORT + 1))
V2=127.0.0.1:$((BASE_PORT + 2))
MESHPROXY=127.0.0.1:$((BASE_PORT + 10))
ADMIN=127.0.0.1:$((BASE_PORT + 11))

command -v valgrind >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
}
cd "$ROOT"
# The release build keeps its symbols, which is all the function table needs.
cargo build --release -j2 -p serin-meshproxy -p serin-testapp -p serin-e2e --bin meshproxy --bin serin-testapp \
    --bin serin-loadgen
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

. "$ROOT/e2e/bench/lib.sh"
mkdir -p "$OUT"

start backend-v1 "$BIN/serin-testapp" --listen "$V1" --app-version v1
start backend-v2 "$BIN/serin-testapp" --listen "$V2" --app-version v2
wait_for "$V1" backend-v1
wait_for "$V2" backend-v2

CONFIG=${SERIN_PROFILE_CONFIG:-$WORK/meshproxy.yaml}
[ -n "${SERIN_PROFILE_CONFIG:-}" ] || split_config 90 10 "{address: \"$V1\"}" "{address: \"$V2\"}" >"$CONFIG"

# Counting starts zeroed by callgrind_control once the warmup is over.
start meshproxy valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
    "$BIN/meshproxy" run --config "$CONFIG" --listen "$MESHPROXY" --admin "$ADMIN" --workers 1 "$@"
MESHPROXY_PID=${STARTED[-1]}
for _ in $(seq 1500); do
    curl -fsS "http://$ADMIN/ready" >/dev/null 2>&1 && break
    sleep 0.2
done
load() { # requests
    "$BIN/serin-loadgen" run --label profile --target "$MESHPROXY" --host app.bench --path /bytes/1024 \
        --rate "$RATE" --warmup-seconds 0 --seconds "$(awk -v n="$1" -v r="$RATE" 'BEGIN {print n / r}')" \
        --connections 16
}
load 800 >/dev/null
callgrind_control -z "$MESHPROXY_PID" >/dev/null
result=$(load "$REQUESTS")
callgrind_control -d measured "$MESHPROXY_PID" >/dev/null
dump=$(ls -t "$WORK"/callgrind.out.* | head -1)

python3 - "$dump" "$OUT/proxy-profile.md" "$result" "$*" <<'PY'
import json, re, subprocess, sys
dump, out, result, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
requests = result["completed"]
total = 0
for line in open(dump):
    if line.startswith("summary:") or line.startswith("totals:"):
        total = int(line.split()[1])
row = re.compile(r"^\s*([\d,]+)\s+(?:\([\d.]+%\)\s+)?(\S.*)$")
def top(inclusive):
    flags = ["--inclusive=yes"] if inclusive else []
    text = subprocess.run(["callgrind_annotate", *flags, "--threshold=100", dump],
                          capture_output=True, text=True, check=True).stdout
    rows = []
    for line in text.splitlines():
        found = row.match(line)
        if not found or ":" not in found.group(2):
            continue
        ir = int(found.group(1).replace(",", ""))
        # The chain from main down to the runtime holds everything: it says nothing.
        if ir > 0.9 * total:
            continue
        name = found.group(2).split(" [")[0].split(":", 1)[1]
        rows.append((ir, name))
    return rows[:25]
lines = [
    "# meshproxy instructions per request (callgrind)",
    "",
    f"meshproxy run {args}".rstrip() + f": {requests} requests ({result['errors']} failed) over keep-alive HTTP/1.1, 90/10 split, 1 KiB.",
    "",
    f"**{total / requests:,.0f} instructions per request** ({total:,} in all).",
    "",
]
for inclusive in (True, False):
    lines += [f"## Top functions, {'inclusive' if inclusive else 'self'} (instructions per request)", "",
              "| per request | function |", "|---:|---|"]
    lines += [f"| {ir / requests:,.0f} | `{name[:140]}` |" for ir, name in top(inclusive)]
    lines.append("")
text = "\n".join(lines)
open(out, "w").write(text)
print(text)
PY
