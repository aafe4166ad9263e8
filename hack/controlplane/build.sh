#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) from the
# published Go modules and caches the binaries outside the work tree, so a fresh clone on the same
# machine (CI) pays only once. Prints the directory holding the binaries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}
out="$cache/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
mkdir -p "$out"
# The go.mod files are part of the cache key: a changed pin rebuilds.
stamp=$(cat "$here"/k8s/go.mod "$here"/k8s/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum "$0" | sha256sum | cut -c1-16)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then echo "$out"; exit 0; fi

minor=$(echo "$K8S_VERSION" | cut -d. -f2)
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# Two cores: one package at a time keeps peak memory sane while the linker runs.
( cd "$here/k8s" && for cmd in kube-apiserver kube-controller-manager kubectl; do
    [ -x "$out/$cmd" ] && [ -f "$out/.stamp" ] || true
    echo "building $cmd $K8S_VERSION" >&2
    go build -trimpath -ldflags "$ldflags" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd" >&2
  done )
( cd "$here/etcd" && echo "building etcd $ETCD_VERSION" >&2 && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3 >&2 )
echo "$stamp" > "$out/.stamp"
echo "$out"
