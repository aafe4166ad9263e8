#!/usr/bin/env bash
# Builds mcp-bastion-bridge: the stdio bridge as a Node.js single executable application (SEA), so
# it runs inside any glibc-based MCP server image without Node or our node_modules there.
# Used by the Dockerfile and by test/ship/image.test.ts, so both build it the same way.
#
# Usage: hack/tools/build-bridge.sh OUT_FILE [NODE_BINARY]
#   1. esbuild bundles hack/tools/bridge-entry.ts and everything it imports into one CommonJS file
#      (Node 24's SEA runs a single CommonJS script and can require only built-in modules);
#   2. `node --experimental-sea-config` turns it into a preparation blob;
#   3. the blob is injected into a copy of the node binary with postject, flipping the SEA fuse.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: build-bridge.sh OUT_FILE [NODE_BINARY]}
node_bin=${2:-$(command -v node)}
bin="$root/node_modules/.bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# import.meta is empty in CommonJS; the bridge only uses it on paths a single executable never takes.
"$bin/esbuild" "$root/hack/tools/bridge-entry.ts" --bundle --platform=node --format=cjs --target=node24 \
  --log-level=warning --log-override:empty-import-meta=silent --outfile="$work/bridge.cjs"
cat > "$work/sea-config.json" <<JSON
{ "main": "$work/bridge.cjs", "output": "$work/bridge.blob", "disableExperimentalSEAWarning": true, "useCodeCache": false }
JSON
# Both tools are chatty on success (postject warns about ELF note sections): show output on failure only.
quiet() { "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }; }
quiet "$node_bin" --experimental-sea-config "$work/sea-config.json"
mkdir -p "$(dirname "$out")"
rm -f "$out"
cp "$node_bin" "$out"
chmod 0755 "$out"
quiet "$bin/postject" "$out" NODE_SEA_BLOB "$work/bridge.blob" \
  --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2
echo "$out"
