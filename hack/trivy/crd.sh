#!/usr/bin/env bash
# Fetches Trivy Operator's VulnerabilityReport CRD (deploy/helm/crds in its Go module,
# github.com/aquasecurity/trivy-operator) through the Go module proxy into ~/.cache/mcp-bastion, for the
# tests that install it into the local control plane: the real schema, never a copy in this repository.
# v0.29.0: the newest release the module proxy serves here (v0.30.0 is refused). Prints the CRD file's path.
set -euo pipefail
# `make unit` (MCP_BASTION_UNIT=1) runs only tests that need nothing outside npm: a test that gets here was misjudged.
if [ "${MCP_BASTION_UNIT:-}" = 1 ]; then echo "$(basename "$0"): called under \`make unit\`, which runs only tests that need nothing outside npm (test/unit.ts misjudged a test)" >&2; exit 3; fi
TRIVY_OPERATOR_VERSION=v0.29.0
# For the set-up report `make test` prints (see hack/tools/install.sh).
record() { if [ -n "${MCP_BASTION_SETUP_LOG:-}" ]; then printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$MCP_BASTION_SETUP_LOG"; fi; }
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}
out="$cache/crds/trivy-operator-$TRIVY_OPERATOR_VERSION"
crd="$out/aquasecurity.github.io_vulnerabilityreports.yaml"
t0=$SECONDS
how=cache
if [ ! -s "$crd" ]; then
  mkdir -p "$out"
  exec 9>"$out/.lock"
  flock 9
  if [ ! -s "$crd" ]; then
    echo "fetching the VulnerabilityReport CRD of github.com/aquasecurity/trivy-operator@$TRIVY_OPERATOR_VERSION (Go module proxy)" >&2
    # Outside any module: `go mod download` of one version fills the module cache (read-only files) and says where.
    dir=$(cd "$out" && GOFLAGS=-mod=mod go mod download -json "github.com/aquasecurity/trivy-operator@$TRIVY_OPERATOR_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -n "$dir" ] && [ -f "$dir/deploy/helm/crds/aquasecurity.github.io_vulnerabilityreports.yaml" ] ||
      { echo "$(basename "$0"): the module has no deploy/helm/crds/aquasecurity.github.io_vulnerabilityreports.yaml" >&2; exit 1; }
    cp "$dir/deploy/helm/crds/aquasecurity.github.io_vulnerabilityreports.yaml" "$crd.tmp"
    chmod 644 "$crd.tmp"
    mv "$crd.tmp" "$crd"
    how=built
  fi
fi
record "Trivy Operator CRD (trivy-operator-$TRIVY_OPERATOR_VERSION)" "$how" $((SECONDS - t0))
echo "$crd"
