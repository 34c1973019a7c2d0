#!/usr/bin/env bash
# Kubernetes mode on the e2e rig: how fast a weight written to an HTTPRoute reaches the waypoint's
# data plane (60 changes, with 2 Services in the watch and then with SERIN_BENCH_SERVICES more,
# each with SERIN_BENCH_ENDPOINTS endpoints; defaults 1000 and 10), and the waypoint's memory.
#
#   e2e/bench/kube.sh          brings a rig up if none is, runs, prints the table
#
# Writes target/bench/kube.md. All traffic stays inside the rig's network namespaces.
. "$(dirname "$0")/rig-lib.sh"
cargo build -p serin-meshproxy -p serin-e2e -p serin-testapp --bins
cargo test -p serin-e2e --features rig --test kube_bench --no-run
e2e/rig/rig exec env SERIN_BENCH_SERVICES="${SERIN_BENCH_SERVICES:-1000}" SERIN_BENCH_ENDPOINTS="${SERIN_BENCH_ENDPOINTS:-10}" \
  cargo test -p serin-e2e --features rig --test kube_bench -- --nocapture
