# Shared by the benchmark scripts: a work folder, processes started in the background and stopped at
# exit, and waiting for a listener. Source it after setting nothing; it sets WORK and STARTED.

WORK=$(mktemp -d)
STARTED=()
cleanup() {
    for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${SERIN_BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

start() { # name command...: runs it in the background, logging to $WORK/name.log, stopped at exit
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    STARTED+=($!)
}

wait_for() { # address name: waits until address accepts connections, else shows $WORK/name.log
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$2 did not start listening on $1; its log:" >&2
    cat "$WORK/$2.log" >&2 || true
    exit 1
}
