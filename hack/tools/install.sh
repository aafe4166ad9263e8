#!/usr/bin/env bash
# Installs the independent tools the shipping tests use, each from its own registry, and caches them
# outside the work tree so a fresh clone on the same machine (CI) pays only once:
#   helm        from the helm.sh/helm/v3 Go module
#   kube-score  from the github.com/zegl/kube-score Go module
#   checkov     from PyPI, in its own virtualenv
#   luahealth   Argo CD's Lua engine (github.com/yuin/gopher-lua) behind a tiny runner, see luahealth/
# Usage: install.sh [TOOL...]   (no TOOL = all). Prints the absolute path of each tool, one per line.
# Idempotent: a tool is rebuilt only when its pinned version (or the luahealth source) changes.
set -euo pipefail
# `make unit` (MCP_BASTION_UNIT=1) runs only tests that need nothing outside npm: a test that gets here was misjudged.
if [ "${MCP_BASTION_UNIT:-}" = 1 ]; then echo "$(basename "$0"): called under \`make unit\`, which runs only tests that need nothing outside npm (test/unit.ts misjudged a test)" >&2; exit 3; fi
here=$(cd "$(dirname "$0")" && pwd)
# For the set-up report `make test` prints at the end: one line (what, cache|built, seconds) per step when
# MCP_BASTION_SETUP_LOG names a file (the Makefile sets it for its own steps only, never for the tests).
record() { if [ -n "${MCP_BASTION_SETUP_LOG:-}" ]; then printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$MCP_BASTION_SETUP_LOG"; fi; }
HELM_VERSION=v3.22.0
KUBE_SCORE_VERSION=v1.20.0
CHECKOV_VERSION=3.3.30
cache=${MCP_BASTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-bastion}
tools="$cache/tools"
mkdir -p "$tools"
# One installer at a time (test files run in parallel and each asks for its tools).
exec 9>"$tools/.lock"
flock 9
export CGO_ENABLED=0 GOFLAGS=-mod=mod

# fresh NAME KEY: true when $tools/NAME was built from KEY (the stamp file holds the key).
fresh() { [ -f "$tools/$1.stamp" ] && [ "$(cat "$tools/$1.stamp")" = "$2" ]; }
stamp() { echo "$2" > "$tools/$1.stamp"; built=built; }
# The control plane build has priority on this 2-core machine: Go tools build niced, one package at a time.
gobuild() { nice -n 10 go install -trimpath -ldflags "$1" "$2" >&2; }

install_helm() {
  local key="$HELM_VERSION-k8s1.37" bin="$tools/helm-$HELM_VERSION/helm"
  if ! fresh helm "$key" || [ ! -x "$bin" ]; then
    echo "building helm $HELM_VERSION (Go module helm.sh/helm/v3)" >&2
    # Like helm's own Makefile: the default Kubernetes version (lint, template) is the client-go it
    # was built with (v0.37 -> 1.37); tests pass --kube-version of the local control plane anyway.
    local v="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    local k="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37"
    k="$k -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37"
    GOBIN="$(dirname "$bin")" gobuild "-s -w $v $k" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    stamp helm "$key"
  fi
  echo "$bin"
}

install_kube_score() {
  local key="$KUBE_SCORE_VERSION" bin="$tools/kube-score-$KUBE_SCORE_VERSION/kube-score"
  if ! fresh kube-score "$key" || [ ! -x "$bin" ]; then
    echo "building kube-score $KUBE_SCORE_VERSION (Go module github.com/zegl/kube-score)" >&2
    GOBIN="$(dirname "$bin")" gobuild "-s -w -X main.version=$KUBE_SCORE_VERSION" \
      "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
    stamp kube-score "$key"
  fi
  echo "$bin"
}

install_checkov() {
  local key="$CHECKOV_VERSION" venv="$tools/checkov-$CHECKOV_VERSION"
  if ! fresh checkov "$key" || [ ! -x "$venv/bin/checkov" ]; then
    echo "installing checkov $CHECKOV_VERSION (PyPI) into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" >&2
    stamp checkov "$key"
  fi
  echo "$venv/bin/checkov"
}

install_luahealth() {
  local src="$here/luahealth"
  local key
  key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
  local bin="$tools/luahealth-$key/luahealth"
  if ! fresh luahealth "$key" || [ ! -x "$bin" ]; then
    echo "building luahealth (Argo CD's Lua engine, github.com/yuin/gopher-lua)" >&2
    ( cd "$src" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$bin" . >&2 )
    stamp luahealth "$key"
  fi
  echo "$bin"
}

[ $# -gt 0 ] || set -- helm kube-score checkov luahealth
for tool in "$@"; do
  t0=$SECONDS
  built=cache
  case "$tool" in
    helm) install_helm ;;
    kube-score) install_kube_score ;;
    checkov) install_checkov ;;
    luahealth) install_luahealth ;;
    *) echo "install.sh: unknown tool \"$tool\" (helm, kube-score, checkov, luahealth)" >&2; exit 2 ;;
  esac
  record "$tool (tool)" "$built" $((SECONDS - t0))
done
