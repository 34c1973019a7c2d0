#!/usr/bin/env bash
# Writes the krew plugin manifest of a release to stdout, with the checksum of each archive:
#
#   kubectl-serin/krew/render.sh VERSION DIR > serin.yaml
#
# DIR holds the release's archives, kubectl-serin-<target>.tar.gz (package.sh makes them); each
# one found becomes a platform of the manifest, downloaded from the release's GitHub page. Submit
# the result to krew-index as plugins/serin.yaml.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 VERSION DIR" >&2; exit 2; }
version="${1#v}" dir="$2"
base="https://github.com/serin-dev/serin/releases/download/v$version"

platforms=""
found=0
# Rust target -> krew's os and arch.
for pair in x86_64-unknown-linux-gnu:linux:amd64 aarch64-unknown-linux-gnu:linux:arm64 \
  x86_64-apple-darwin:darwin:amd64 aarch64-apple-darwin:darwin:arm64 x86_64-pc-windows-msvc:windows:amd64; do
  IFS=: read -r target os arch <<<"$pair"
  archive="$dir/kubectl-serin-$target.tar.gz"
  [ -f "$archive" ] || continue
  found=$((found + 1))
  bin=kubectl-serin
  [ "$os" = windows ] && bin=kubectl-serin.exe
  sha=$(sha256sum "$archive" | cut -d' ' -f1)
  platforms+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $base/kubectl-serin-$target.tar.gz
    sha256: $sha
    bin: $bin
    files:
      - from: $bin
        to: .
"
done
[ "$found" -gt 0 ] || { echo "$0: no kubectl-serin-<target>.tar.gz in $dir" >&2; exit 1; }

cat <<MANIFEST
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: serin
spec:
  version: v$version
  homepage: https://github.com/serin-dev/serin
  shortDescription: Watch, steer and gate Serin canary rollouts
  description: |
    kubectl serin shows Serin's Canaries (list, a live rollout view with
    steps, metrics against thresholds and gates), steers a rollout
    (promote, abort, pause, resume, retry, open or close a gate) and gates
    CI on one: "kubectl serin wait" exits 0 when the target's current
    revision is promoted, 1 as soon as it is rolled back, 2 on timeout.
  caveats: |
    Steering a rollout needs the right to patch the Canary; watching it,
    to get and list Canaries and events.
  platforms:
$platforms
MANIFEST
