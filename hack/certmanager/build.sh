#!/usr/bin/env bash
# Builds the cert-manager controller from cert-manager's published Go module (pinned in hack/certmanager/go.mod;
# main.go starts the module's own control loops, see there why it is not cmd/controller) and copies the module's
# CRDs (deploy/crds, the controller-gen output of the same version) next to it, for test/tls's issuance proof.
# Cached in ~/.cache/mcp-bastion keyed by go.mod, go.sum, main.go and this script, so a changed pin rebuilds.
# Prints the directory holding bin/cert-manager-controller and crds/*.yaml.
set -euo pipefail
# `make unit` (MCP_BASTION_UNIT=1) runs only tests that need nothing outside npm: a test that gets here was misjudged.
if [ "${MCP_BASTION_UNIT:-}" = 1 ]; then echo "$(basename "$0"): called under \`make unit\`, which runs only tests that need nothing outside npm (test/unit.ts misjudged a test)" >&2; exit 3; fi
# For the set-up report `make test` prints at the end (see hack/deps-gateway.sh).
record() { if [ -n "${MCP_BASTION_SETUP_LOG:-}" ]; then printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$MCP_BASTION_SETUP_LOG"; fi; }
here=$(cd "$(dirname "$0")" && pwd)
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}
mkdir -p "$cache/bin"
version=$(awk '$1 == "github.com/cert-manager/cert-manager" { print $2 }' "$here/go.mod")
stamp=$(cat "$here"/go.mod "$here"/go.sum "$here"/main.go "$0" | sha256sum | cut -c1-16)
out="$cache/bin/cert-manager-$version-$stamp"
t0=$SECONDS
if [ -f "$out/.stamp" ]; then record "cert-manager $version (Go module)" cache 0; echo "$out"; exit 0; fi
exec 9>"$cache/bin/.cert-manager-build.lock"
flock 9
if [ -f "$out/.stamp" ]; then record "cert-manager $version (Go module)" cache $((SECONDS - t0)); echo "$out"; exit 0; fi
mkdir -p "$out/bin" "$out/crds"
echo "building cert-manager controller $version" >&2
(cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath -ldflags "-s -w" \
  -o "$out/bin/cert-manager-controller" . >&2)
moddir=$(cd "$here" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)
cp "$moddir"/deploy/crds/*.yaml "$out/crds/"
chmod u+w "$out"/crds/*.yaml
echo "$stamp" > "$out/.stamp"
record "cert-manager $version (Go module)" built $((SECONDS - t0))
echo "$out"
