# Shared by the benchmark scripts: a work folder, processes started in the background and stopped at
# exit, waiting for a listener, and meshproxy's config for the 90/10 split. Source it after setting
# nothing; it sets WORK and STARTED.

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

split_config() { # primary-weight canary-weight primary-endpoints canary-endpoints
    # meshproxy's config for the benchmarks' split: clients address app.bench, whose route sends
    # the weights' shares to app-primary (v1) and app-canary (v2). Endpoints are YAML flow items,
    # e.g. '{address: "127.0.0.1:9001"}'.
    cat <<YAML
services:
  - {name: app, namespace: bench}
  - {name: app-primary, namespace: bench, labels: {version: v1}, endpoints: [$3]}
  - {name: app-canary, namespace: bench, labels: {version: v2}, endpoints: [$4]}
routes:
  - apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: app, namespace: bench}
    spec:
      parentRefs: [{group: "", kind: Service, name: app}]
      rules:
        - backendRefs:
            - {name: app-primary, port: 80, weight: $1}
            - {name: app-canary, port: 80, weight: $2}
YAML
}
