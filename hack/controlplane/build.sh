#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) from the
# published Go modules and caches the binaries outside the work tree, so a fresh clone on the same
# machine (CI) pays only once. Prints the directory holding the binaries.
set -euo pipefail
# `make unit` (MCP_BASTION_UNIT=1) runs only tests that need nothing outside npm: a test that gets here was misjudged.
if [ "${MCP_BASTION_UNIT:-}" = 1 ]; then echo "$(basename "$0"): called under \`make unit\`, which runs only tests that need nothing outside npm (test/unit.ts misjudged a test)" >&2; exit 3; fi
here=$(cd "$(dirname "$0")" && pwd)
# For the set-up report `make test` prints at the end: one line (what, cache|built, seconds) per step when
# MCP_BASTION_SETUP_LOG names a file (the Makefile sets it for its own steps only, never for the tests).
record() { if [ -n "${MCP_BASTION_SETUP_LOG:-}" ]; then printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$MCP_BASTION_SETUP_LOG"; fi; }
t0=$SECONDS
K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}
out="$cache/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
mkdir -p "$out"
# The go.mod files are part of the cache key: a changed pin rebuilds.
stamp=$(cat "$here"/k8s/go.mod "$here"/k8s/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum "$0" | sha256sum | cut -c1-16)
what="control plane (Kubernetes $K8S_VERSION, etcd $ETCD_VERSION)"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then record "$what" cache $((SECONDS - t0)); echo "$out"; exit 0; fi

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
record "$what" built $((SECONDS - t0))
echo "$out"
