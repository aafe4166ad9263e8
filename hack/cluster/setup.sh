#!/usr/bin/env bash
# Everything a real node of test/cluster needs, as `make cluster-deps` (and so `make test`) installs it, one
# group of steps per call so the Makefile can overlap them with the rest of the set-up:
#   packages  Debian's containerd, runc, CNI plugins, iptables... (hack/cluster/packages.sh; root)
#   binaries  kubelet, kube-proxy, kube-scheduler, kube-router, CoreDNS, pause (build.sh), then the External
#             Secrets Operator (build-eso.sh), then the images made from those binaries (pause, coredns).
#             The two Go builds run one after the other on purpose: each already keeps every core busy, and
#             build.sh reuses the packages the control plane build compiled (the Makefile runs it after that).
#   images    busybox, the Node base, the operator (unmodified Dockerfile), server-everything,
#             server-filesystem, redis (images.sh): mostly network and disk (debootstrap, npm), so they
#             overlap the Go builds well.
# Each step appends "what<TAB>cache|built|system<TAB>seconds" to $MCP_BASTION_SETUP_LOG (the set-up report
# test/run-tests.sh prints), when that names a file. Usage: setup.sh packages|binaries|images...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
record() { if [ -n "${MCP_BASTION_SETUP_LOG:-}" ]; then printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$MCP_BASTION_SETUP_LOG"; fi; }
# built when PATH (a directory's .stamp or an archive) was written at or after T0, else cache.
how() { if [ "$(stat -c %Y "$1")" -ge "$2" ]; then echo built; else echo cache; fi; }

packages() {
  local t0=$SECONDS how
  how=$("$here/packages.sh")
  record "cluster: Debian packages (containerd, runc, ...)" "$how" $((SECONDS - t0))
}

binaries() {
  local t0 t dir
  t0=$SECONDS t=$(date +%s)
  dir=$("$here/build.sh")
  record "cluster: kubelet, kube-proxy, scheduler, kube-router, CoreDNS" "$(how "$dir/.stamp" "$t")" $((SECONDS - t0))
  t0=$SECONDS t=$(date +%s)
  dir=$("$here/build-eso.sh")
  record "cluster: External Secrets Operator" "$(how "$dir/.stamp" "$t")" $((SECONDS - t0))
  image pause coredns
}

# image NAME...: one report line per image.
image() {
  local name t0 t line
  for name in "$@"; do
    t0=$SECONDS t=$(date +%s)
    line=$("$here/images.sh" "$name" | grep "^$name=")
    record "cluster image: $name" "$(how "${line#*=}" "$t")" $((SECONDS - t0))
  done
}

[ $# -gt 0 ] || { echo "usage: setup.sh packages|binaries|images..." >&2; exit 2; }
for step in "$@"; do
  case $step in
    packages) packages ;;
    binaries) binaries ;;
    images) image busybox node-base operator everything filesystem redis ;;
    *) echo "setup.sh: unknown step $step" >&2; exit 2 ;;
  esac
done
