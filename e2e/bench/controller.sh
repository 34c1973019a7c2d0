#!/usr/bin/env bash
# The controller at scale on the e2e rig: its memory, CPU and how late its ticks run while it
# bootstraps, idles over and rolls out SERIN_BENCH_CANARIES Canaries (default 1000), with analysis
# interval SERIN_BENCH_INTERVAL (default 30s) and SERIN_BENCH_WORKERS reconciles at once (default 10).
# Their workloads' pods are played by kwok on a scale node, so only the controller and the control
# plane do real work. The controller is the release build.
#
#   e2e/bench/controller.sh    brings a rig up if none is, runs, prints the table
#
# Writes target/bench/controller.md. All traffic stays inside the rig's network namespace.
. "$(dirname "$0")/rig-lib.sh"
cargo build -j2 --release -p serin-controller
cargo test -j2 -p serin-e2e --features rig --test controller_scale_bench --no-run
e2e/rig/rig exec env SERIN_CONTROLLER_BIN="$CARGO_TARGET_DIR/release/serin-controller" \
  SERIN_BENCH_CANARIES="${SERIN_BENCH_CANARIES:-1000}" SERIN_BENCH_INTERVAL="${SERIN_BENCH_INTERVAL:-30s}" \
  SERIN_BENCH_WORKERS="${SERIN_BENCH_WORKERS:-10}" \
  cargo test -j2 -p serin-e2e --features rig --test controller_scale_bench -- --nocapture
