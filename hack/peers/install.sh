#!/usr/bin/env bash
# Installs the MCP peers the protocol-era tests (test/gateway/era2026-*) use that are not npm packages, and
# caches them outside the work tree so a fresh clone on the same machine (CI) pays only once:
#   python-mcp   the official MCP Python SDK (`mcp` on PyPI, 2.x: speaks 2026-07-28 and the 2025 revisions)
#                in a virtualenv of its own
# The v2 TypeScript SDK peers are npm devDependencies (package.json), the v1 SDK a dependency.
# Usage: install.sh [PEER...]   (no PEER = all). Prints the absolute path of each peer's entry point (for
# python-mcp: the virtualenv's python), one per line.
# Idempotent: a peer is reinstalled only when its pinned version changes.
set -euo pipefail
# `make unit` (MCP_BASTION_UNIT=1) runs only tests that need nothing outside npm: a test that gets here was misjudged.
if [ "${MCP_BASTION_UNIT:-}" = 1 ]; then echo "$(basename "$0"): called under \`make unit\`, which runs only tests that need nothing outside npm (test/unit.ts misjudged a test)" >&2; exit 3; fi
# For the set-up report `make test` prints at the end (see hack/tools/install.sh).
record() { if [ -n "${MCP_BASTION_SETUP_LOG:-}" ]; then printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$MCP_BASTION_SETUP_LOG"; fi; }
PYTHON_MCP_VERSION=2.3.0
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}
peers="$cache/peers"
mkdir -p "$peers"
# One installer at a time (test files run in parallel and each asks for its peers).
exec 9>"$peers/.lock"
flock 9

fresh() { [ -f "$peers/$1.stamp" ] && [ "$(cat "$peers/$1.stamp")" = "$2" ]; }
stamp() { echo "$2" > "$peers/$1.stamp"; built=built; }

install_python_mcp() {
  # The key holds the interpreter's version too: a venv is tied to the python it was made with.
  local key venv
  key="$PYTHON_MCP_VERSION-$(python3 -c 'import sys; print("py%d.%d" % sys.version_info[:2])')"
  venv="$peers/python-mcp-$key"
  if ! fresh python-mcp "$key" || [ ! -x "$venv/bin/python" ]; then
    echo "installing mcp $PYTHON_MCP_VERSION (PyPI) into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$PYTHON_MCP_VERSION" >&2
    # Fail here, not in a test, when the SDK cannot be imported.
    "$venv/bin/python" -c 'import mcp.client' >&2
    stamp python-mcp "$key"
  fi
  echo "$venv/bin/python"
}

[ $# -gt 0 ] || set -- python-mcp
for peer in "$@"; do
  t0=$SECONDS
  built=cache
  case "$peer" in
    python-mcp) install_python_mcp ;;
    *) echo "install.sh: unknown peer \"$peer\" (python-mcp)" >&2; exit 2 ;;
  esac
  record "$peer (peer, PyPI)" "$built" $((SECONDS - t0))
done
