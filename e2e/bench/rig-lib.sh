# Shared by the benchmarks that run on the e2e rig: the repository root as the working folder, the
# cargo target folder, and a rig (brought up for the benchmark, and down after it, if none is up).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/serin/target}"
if ! e2e/rig/rig status >/dev/null 2>&1; then
  e2e/rig/rig up
  trap 'e2e/rig/rig down >/dev/null 2>&1 || true' EXIT
fi
