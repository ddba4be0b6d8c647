#!/bin/sh
# Builds the test control plane into build/cluster/bin when a binary is missing:
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler from the
# k8s.io/kubernetes release pinned in tests/kubernetes/go/go.mod (and its
# go.sum), kwok from the same module graph (tools.go; it then shares the
# compiled client libraries); with the argument `lab`, kube-proxy (same
# release) and helm at the version below too (the lab needs them, the tests do not). Go and its module proxy come
# with the machine (docs/kubernetes.md); the caches live under build/cluster.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=$ROOT/build/cluster/bin
HELM_VERSION=v4.3.2
export GOCACHE="${GOCACHE:-$ROOT/build/cluster/go-build}"
export GOMODCACHE="${GOMODCACHE:-$ROOT/build/cluster/go-mod}"
export GOFLAGS="-trimpath -buildvcs=false"
export GOTOOLCHAIN=local CGO_ENABLED=0

command -v go >/dev/null || { echo "build-cluster: no 'go' on PATH; these machines have Go 1.26 at /usr/local/go/bin" >&2; exit 1; }
mkdir -p "$BIN"

need() { [ -x "$BIN/$1" ] && echo "== $1: cached" && return 1; echo "== building $1"; return 0; }

for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
  if need $cmd; then (cd tests/kubernetes/go && go build -ldflags="-s -w" -o "$BIN/$cmd" k8s.io/kubernetes/cmd/$cmd); fi
done
if need etcd; then (cd tests/kubernetes/go && go build -ldflags="-s -w" -o "$BIN/etcd" ./cmd/etcd); fi
if need kwok; then (cd tests/kubernetes/go && go build -ldflags="-s -w" -o "$BIN/kwok" sigs.k8s.io/kwok/cmd/kwok); fi
if [ "${1:-}" = lab ] && need kube-proxy; then
  (cd tests/kubernetes/go && go build -ldflags="-s -w" -o "$BIN/kube-proxy" k8s.io/kubernetes/cmd/kube-proxy)
fi
if [ "${1:-}" = lab ] && need helm; then GOBIN=$BIN go install -ldflags="-s -w" helm.sh/helm/v4/cmd/helm@$HELM_VERSION; fi
"$BIN/kube-apiserver" --version
