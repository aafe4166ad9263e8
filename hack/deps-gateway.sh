#!/usr/bin/env bash
# Installs what the gateway's tests and benchmark need besides npm packages: redis-server (the shared rate
# limiter's test) and nginx (the benchmark's reference reverse proxy), both from Debian's packages.
#
# The .debs are fetched with `apt-get download` and unpacked with `dpkg-deb -x` into the cache, never installed
# system-wide: no root needed, no init scripts run, no daemon left listening on port 80/6379. Binaries already on
# PATH are used as they are. Idempotent: a second run only checks the stamp and prints the paths.
# Usage: deps-gateway.sh [redis-server|nginx]...   Prints NAME=ABSOLUTE_PATH lines (a wrapper setting LD_LIBRARY_PATH).
set -euo pipefail
# `make unit` (MCP_BASTION_UNIT=1) runs only tests that need nothing outside npm: a test that gets here was misjudged.
if [ "${MCP_BASTION_UNIT:-}" = 1 ]; then echo "$(basename "$0"): called under \`make unit\`, which runs only tests that need nothing outside npm (test/unit.ts misjudged a test)" >&2; exit 3; fi
# For the set-up report `make test` prints at the end: one line (what, cache|built, seconds) per step when
# MCP_BASTION_SETUP_LOG names a file (the Makefile sets it for its own steps only, never for the tests).
record() { if [ -n "${MCP_BASTION_SETUP_LOG:-}" ]; then printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$MCP_BASTION_SETUP_LOG"; fi; }
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}
root="$cache/debroot"
bin="$cache/bin-gateway"
mkdir -p "$root" "$bin" "$cache/debs"

# Packages to unpack per tool; libraries a minimal Debian lacks come along (the rest are in the base system).
declare -A PKGS=(
  [redis-server]="redis-server redis-tools libjemalloc2 liblzf1"
  [nginx]="nginx"
)
declare -A PATHS=([redis-server]="usr/bin/redis-server" [nginx]="usr/sbin/nginx")

install_one() {
  local name=$1 wrapper="$bin/$1" t0=$SECONDS
  if command -v "$name" >/dev/null 2>&1 && [ "$(command -v "$name")" != "$wrapper" ]; then
    record "$name (Debian package)" system 0
    echo "$name=$(command -v "$name")"
    return
  fi
  local built=cache
  local key
  key=$(echo "${PKGS[$name]}" | sha256sum | cut -c1-12)
  if [ ! -x "$wrapper" ] || [ "$(cat "$bin/$name.stamp" 2>/dev/null)" != "$key" ]; then
    echo "deps-gateway: fetching ${PKGS[$name]} from Debian's packages" >&2
    # A fresh machine may have no package lists yet: refresh them once (as root) and retry.
    (cd "$cache/debs" && apt-get download ${PKGS[$name]} >&2) ||
      { [ "$(id -u)" = 0 ] && apt-get update -qq >&2 && (cd "$cache/debs" && apt-get download ${PKGS[$name]} >&2); } || {
        echo "deps-gateway: apt-get download ${PKGS[$name]} failed (run: apt-get update)" >&2
        exit 1
      }
    for p in ${PKGS[$name]}; do
      deb=$(ls -t "$cache/debs/${p}"_*.deb | head -1)
      dpkg-deb -x "$deb" "$root"
    done
    cat >"$wrapper" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu:$root/usr/lib/aarch64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$root/${PATHS[$name]}" "\$@"
EOF
    chmod +x "$wrapper"
    "$wrapper" -v >/dev/null 2>&1 || "$wrapper" --version >/dev/null 2>&1 || {
      echo "deps-gateway: $name does not run after unpacking" >&2
      exit 1
    }
    echo "$key" >"$bin/$name.stamp"
    built=built
  fi
  record "$name (Debian package)" "$built" $((SECONDS - t0))
  echo "$name=$wrapper"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(redis-server nginx)
for t in "${targets[@]}"; do install_one "$t"; done
