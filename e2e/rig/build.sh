#!/usr/bin/env bash
# Builds the e2e rig's control plane from pinned Go modules, once, into a cache outside the repo:
# kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy and kubectl (Kubernetes), etcd,
# kwok, CoreDNS, the Prometheus server the rig runs as a pod, gitops-verdicts (Argo CD's health
# Lua and Flux's kstatus, for the GitOps tests), helm (for the chart's) and krew (for the plugin's).
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
COREDNS_VERSION=v1.15.0
# Prometheus 3.16's Go module version.
PROMETHEUS_VERSION=v0.316.0
# Must match modules/helm/go.mod.
HELM_VERSION=v4.3.1

here="$(cd "$(dirname "$0")" && pwd)"
cache="${SERIN_E2E_CACHE:-$HOME/.cache/serin-e2e}"
bin="$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-coredns-$COREDNS_VERSION-prometheus-$PROMETHEUS_VERSION"
mkdir -p "$bin"
log="$cache/build.log"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false"

have() { for b in "$@"; do [ -x "$bin/$b" ] || return 1; done; }

# Go is needed only when something is missing; Go's own installer puts it in /usr/local/go.
if ! have etcd kwok coredns prometheus gitops-verdicts helm krew kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl && ! command -v go >/dev/null; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
  else
    echo "build.sh: building the rig needs a Go toolchain (1.25 or newer) on PATH" >&2
    exit 1
  fi
fi

build_kubernetes() {
  have kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl && return
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
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl)
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

# CoreDNS with the plugins a cluster's Corefile uses; see modules/coredns/main.go.
build_coredns() {
  have coredns && return
  echo "building CoreDNS $COREDNS_VERSION" >&2
  (cd "$here/modules/coredns" && go build -trimpath -ldflags "-s -w" -o "$bin/coredns" .)
}

# Prometheus with only the Kubernetes service discovery, which is how it finds pods in a cluster
# (Debian's prometheus package is built without it). Its build tags choose the discoverers.
# Programs built from a wrapper module under modules/ whose files this repository holds: rebuilt
# whenever those files change (a stamp beside the binary holds their hash).
build_from_module() {
  local name="$1" package="$2" ldflags="$3" dir="$here/modules/$1" sum
  sum=$(cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go | sha256sum | cut -c1-16)
  [ -x "$bin/$name" ] && [ "$(cat "$bin/$name.sum" 2>/dev/null)" = "$sum" ] && return
  echo "building $name" >&2
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name" "$package")
  echo "$sum" > "$bin/$name.sum"
}

build_prometheus() {
  have prometheus && return
  echo "building Prometheus $PROMETHEUS_VERSION" >&2
  (cd "$here/modules/prometheus" && go build -trimpath -pgo=off -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "-s -w" -o "$bin/prometheus" github.com/prometheus/prometheus/cmd/prometheus)
}

{
  start=$(date +%s)
  build_etcd
  build_kwok
  build_coredns
  build_prometheus
  # Argo CD's health Lua (gopher-lua) and Flux's kstatus, run on objects from the rig.
  build_from_module gitops-verdicts . ""
  # krew, which installs kubectl serin from its manifest in the plugin's tests.
  build_from_module krew sigs.k8s.io/krew/cmd/krew ""
  # h2spec, for meshproxy's HTTP/2 conformance.
  build_from_module h2spec github.com/summerwind/h2spec/cmd/h2spec ""
  # helm, for the chart's tests.
  build_from_module helm helm.sh/helm/v4/cmd/helm "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
  build_kubernetes
  echo "built in $(( $(date +%s) - start ))s into $bin" >&2
} 2> >(tee -a "$log" >&2)
echo "$bin"
