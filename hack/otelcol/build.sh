#!/usr/bin/env bash
# Builds the OpenTelemetry Collector the audit-export tests run (hack/otelcol/main.go: the OTLP receiver and
# the contrib file exporter, all collector modules at one release, v0.161.0 / v1.67.0: the newest at which
# contrib's fileexporter builds beside the core modules) from the published Go modules, and caches it in
# ~/.cache/mcp-bastion keyed by main.go, go.mod, go.sum and this script. Prints the binary's path.
set -euo pipefail
# `make unit` (MCP_BASTION_UNIT=1) runs only tests that need nothing outside npm: a test that gets here was misjudged.
if [ "${MCP_BASTION_UNIT:-}" = 1 ]; then echo "$(basename "$0"): called under \`make unit\`, which runs only tests that need nothing outside npm (test/unit.ts misjudged a test)" >&2; exit 3; fi
here=$(cd "$(dirname "$0")" && pwd)
# For the set-up report `make test` prints (see hack/tools/install.sh).
record() { if [ -n "${MCP_BASTION_SETUP_LOG:-}" ]; then printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$MCP_BASTION_SETUP_LOG"; fi; }
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}
mkdir -p "$cache/bin"
stamp=$(cat "$here"/main.go "$here"/go.mod "$here"/go.sum "$0" | sha256sum | cut -c1-16)
out="$cache/bin/otelcol-v0.161.0-$stamp"
t0=$SECONDS
how=cache
if [ ! -f "$out/.stamp" ]; then
  # One build at a time (test files run in parallel and each asks for the collector).
  exec 9>"$cache/bin/.otelcol-build.lock"
  flock 9
  if [ ! -f "$out/.stamp" ]; then
    mkdir -p "$out"
    echo "building the OpenTelemetry Collector v0.161.0 (otlpreceiver + fileexporter)" >&2
    (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath -ldflags "-s -w" -o "$out/otelcol" . >&2)
    echo "$stamp" > "$out/.stamp"
    how=built
  fi
fi
record "OpenTelemetry Collector (otelcol-v0.161.0)" "$how" $((SECONDS - t0))
echo "$out/otelcol"
