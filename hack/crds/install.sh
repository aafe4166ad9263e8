#!/usr/bin/env bash
# Installs the real upstream CRDs of the third-party kinds the renderer emits (Istio, External Secrets,
# cert-manager) from their published Go modules (the Go module proxy, `go mod download`), as listed in
# hack/crds/versions, into ~/.cache/mcp-bastion/crds-<key>, keyed by the resolved pins and this script.
# Tests and `make demo` find them with dev/crds.ts, which fails naming `make crds-upstream` when absent:
# never a fallback to a schema-less stand-in, which would skip the validation the project promises.
# Prints the directory holding the CRD files (one per upstream file, plus VERSIONS).
#   hack/crds/install.sh              install when missing (once), print the directory
#   hack/crds/install.sh --installed  print the directory if installed, else exit 4 (no download)
set -euo pipefail
# `make unit` (MCP_BASTION_UNIT=1) runs only tests that need nothing outside npm: a test that gets here was misjudged.
if [ "${MCP_BASTION_UNIT:-}" = 1 ]; then echo "$(basename "$0"): called under \`make unit\`, which runs only tests that need nothing outside npm (test/unit.ts misjudged a test)" >&2; exit 3; fi
# For the set-up report `make test` prints at the end (see hack/deps-gateway.sh).
record() { if [ -n "${MCP_BASTION_SETUP_LOG:-}" ]; then printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$MCP_BASTION_SETUP_LOG"; fi; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}

# "module version files..." per line, with "from:FILE" resolved to the version FILE's go.mod requires.
pins=$(grep -vE '^[[:space:]]*(#|$)' "$here/versions" | while read -r module version files; do
  if [[ $version == from:* ]]; then
    gomod=$root/${version#from:}
    version=$(awk -v m="$module" '{ for (i = 1; i < NF; i++) if ($i == m && $(i + 1) ~ /^v/) { print $(i + 1); exit } }' "$gomod")
    [ -n "$version" ] || { echo "$(basename "$0"): ${gomod#"$root"/} does not require $module" >&2; exit 2; }
  fi
  echo "$module $version $files"
done)
key=$( { echo "$pins"; cat "$0"; } | sha256sum | cut -c1-16)
out="$cache/crds-$key"
label="upstream CRDs ($(echo "$pins" | awk '{ m = $1; sub(/^github\.com\/[^\/]*\//, "", m); printf "%s%s %s", (NR > 1 ? ", " : ""), m, $2 }'))"

if [ "${1:-}" = --installed ]; then
  if [ -f "$out/.stamp" ]; then echo "$out"; exit 0; fi
  echo "$(basename "$0"): the upstream CRDs are not installed (expected in $out): run \`make crds-upstream\`" >&2
  exit 4
fi
t0=$SECONDS
if [ -f "$out/.stamp" ]; then record "$label" cache 0; echo "$out"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.crds-install.lock"
flock 9
if [ -f "$out/.stamp" ]; then record "$label" cache $((SECONDS - t0)); echo "$out"; exit 0; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/crds"
while read -r module version files; do
  echo "downloading $module@$version (Go module proxy)" >&2
  # Outside any module, so only the module proxy and GOFLAGS' defaults are involved.
  json=$(cd "$work" && GOFLAGS= go mod download -json "$module@$version") || { echo "$json" >&2; exit 1; }
  dir=$(printf '%s\n' "$json" | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')
  [ -n "$dir" ] && [ -d "$dir" ] || { echo "$(basename "$0"): go mod download $module@$version gave no directory: $json" >&2; exit 1; }
  for pattern in $files; do
    # shellcheck disable=SC2086 # the glob is meant to expand
    matched=$(cd "$dir" && ls -1 $pattern 2>/dev/null || true)
    [ -n "$matched" ] || { echo "$(basename "$0"): $module@$version has no $pattern (has that version moved its CRDs?)" >&2; exit 1; }
    for f in $matched; do
      grep -q '^kind: CustomResourceDefinition' "$dir/$f" || { echo "$(basename "$0"): $module@$version $f holds no CustomResourceDefinition" >&2; exit 1; }
      # Named after the module and the file, so two modules' files never collide.
      cp "$dir/$f" "$work/crds/${module//\//_}_$(basename "$f")"
    done
  done
  echo "$module $version" >>"$work/crds/VERSIONS"
done <<<"$pins"
chmod -R u+w "$work/crds"
echo "$key" >"$work/crds/.stamp"
rm -rf "$out"
mv "$work/crds" "$out"
record "$label" built $((SECONDS - t0))
echo "$out"
