#!/usr/bin/env bash
# Builds the e2e rig's control plane from pinned Go modules, once, into a cache outside the repo:
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (Kubernetes), etcd, and kwok.
#
# Each program is built from a wrapper module under modules/ whose committed go.mod/go.sum pin it
# (k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging modules with local
# directories, so the wrapper maps each of them to its published v0.N.M tag).
#
# Usage: e2e/rig/build.sh        prints the directory holding the binaries
set -euo pipefail

K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0

here="$(cd "$(dirname "$0")" && pwd)"
cache="${SERIN_E2E_CACHE:-$HOME/.cache/serin-e2e}"
bin="$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
mkdir -p "$bin"
log="$cache/build.log"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false"

have() { for b in "$@"; do [ -x "$bin/$b" ] || return 1; done; }

# Go is needed only when something is missing; Go's own installer puts it in /usr/local/go.
if ! have etcd kwok kube-apiserver kube-controller-manager kube-scheduler kubectl && ! command -v go >/dev/null; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
  else
    echo "build.sh: building the rig needs a Go toolchain (1.25 or newer) on PATH" >&2
    exit 1
  fi
fi

build_kubernetes() {
  have kube-apiserver kube-controller-manager kube-scheduler kubectl && return
  local minor patch
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  patch=$(echo "$K8S_VERSION" | cut -d. -f3)
  local ldflags="-s -w \
    -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
    -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
    -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  echo "building Kubernetes $K8S_VERSION (staging modules at v0.$minor.$patch)" >&2
  (cd "$here/modules/kubernetes" && go build -trimpath -pgo=off -ldflags "$ldflags" -o "$bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
}

build_etcd() {
  have etcd && return
  echo "building etcd $ETCD_VERSION" >&2
  (cd "$here/modules/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
}

build_kwok() {
  have kwok && return
  echo "building kwok $KWOK_VERSION" >&2
  (cd "$here/modules/kwok" && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    -o "$bin/kwok" sigs.k8s.io/kwok/cmd/kwok)
}

{
  start=$(date +%s)
  build_etcd
  build_kwok
  build_kubernetes
  echo "built in $(( $(date +%s) - start ))s into $bin" >&2
} 2> >(tee -a "$log" >&2)
echo "$bin"
