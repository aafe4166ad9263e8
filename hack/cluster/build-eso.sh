#!/usr/bin/env bash
# Builds the External Secrets Operator from its published Go module (hack/cluster/eso: v0.16.2, the newest
# release whose go.mod builds outside its own repository) for test/cluster's secrets proof, and caches it
# like hack/cluster/build.sh. A separate script: it is by far the largest build (every provider's SDK).
# Prints the directory holding the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}
mkdir -p "$cache/bin"
stamp=$(cat "$here"/eso/go.mod "$here"/eso/go.sum "$0" | sha256sum | cut -c1-16)
out="$cache/bin/eso-$stamp"
if [ -f "$out/.stamp" ]; then echo "$out"; exit 0; fi
exec 9>"$cache/bin/.eso-build.lock"
flock 9
if [ -f "$out/.stamp" ]; then echo "$out"; exit 0; fi
mkdir -p "$out"
echo "building external-secrets" >&2
(cd "$here/eso" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath -ldflags "-s -w" \
  -o "$out/external-secrets" github.com/external-secrets/external-secrets >&2)
echo "$stamp" > "$out/.stamp"
echo "$out"
