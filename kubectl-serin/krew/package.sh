#!/usr/bin/env bash
# Packs a built kubectl-serin into the release archive krew installs from:
#
#   kubectl-serin/krew/package.sh BINARY TARGET OUT_DIR
#
# writes OUT_DIR/kubectl-serin-TARGET.tar.gz holding the binary as `kubectl-serin` (with `.exe` on
# Windows) at its top, as krew.yaml's `files` expect. TARGET is a Rust target triple.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 BINARY TARGET OUT_DIR" >&2; exit 2; }
binary="$1" target="$2" out="$3"
[ -x "$binary" ] || { echo "$0: $binary is not an executable" >&2; exit 1; }
name=kubectl-serin
case "$target" in *windows*) name=kubectl-serin.exe ;; esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$binary" "$work/$name"
mkdir -p "$out"
# Reproducible: fixed owner, mode and time, so the same binary gives the same checksum.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=0755 \
  -C "$work" -czf "$out/kubectl-serin-$target.tar.gz" "$name"
echo "$out/kubectl-serin-$target.tar.gz"
