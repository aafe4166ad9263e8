#!/usr/bin/env bash
# Builds what a real node of test/cluster runs besides Debian's packages, from published Go modules, and
# caches it outside the work tree (like hack/controlplane/build.sh), so CI pays once per machine:
#   kubelet, kube-proxy, kube-scheduler  k8s.io/kubernetes (same pin as the control plane: shared packages)
#   kube-router                          github.com/cloudnativelabs/kube-router/v2 (network-policy controller)
#   coredns                              github.com/coredns/coredns
#   pause                                pause.c, static (the pod sandbox process)
# Prints the directory holding the binaries. Idempotent; one build at a time (flock).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=v1.34.4
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}
mkdir -p "$cache/bin"
# The go.mod files are part of the cache key: a changed pin rebuilds.
stamp=$(cat "$here"/k8s/go.mod "$here"/k8s/go.sum "$here"/kube-router/go.mod "$here"/kube-router/go.sum \
  "$here"/coredns/go.mod "$here"/coredns/go.sum "$here"/pause.c "$0" | sha256sum | cut -c1-16)
out="$cache/bin/cluster-$K8S_VERSION-$stamp"
if [ -f "$out/.stamp" ]; then echo "$out"; exit 0; fi
exec 9>"$cache/bin/.cluster-build.lock"
flock 9
if [ -f "$out/.stamp" ]; then echo "$out"; exit 0; fi
mkdir -p "$out"

minor=$(echo "$K8S_VERSION" | cut -d. -f2)
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# Niced: on a 2-core machine whatever else runs (tests, the control-plane build) keeps going.
gobuild() { nice -n 10 go build -trimpath "$@" >&2; }
( cd "$here/k8s" && for cmd in kubelet kube-proxy kube-scheduler; do
    echo "building $cmd $K8S_VERSION" >&2
    gobuild -ldflags "$ldflags" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done )
( cd "$here/kube-router" && echo "building kube-router" >&2 &&
  gobuild -ldflags "-s -w" -o "$out/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router )
( cd "$here/coredns" && echo "building coredns" >&2 && gobuild -ldflags "-s -w" -o "$out/coredns" github.com/coredns/coredns )
echo "building pause" >&2
gcc -Os -static -o "$out/pause" "$here/pause.c" >&2
strip "$out/pause"
echo "$stamp" > "$out/.stamp"
echo "$out"
