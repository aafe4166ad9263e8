#!/usr/bin/env bash
# Runs node:test over the given files and ends with the plain summary line `N passed, N failed`.
# Just before that line it prints how long the tests took and, for `make test` (MCP_BASTION_SETUP_REPORT
# names the file its set-up steps wrote), what the set-up cost and whether each step came from the cache.
set -uo pipefail
concurrency=$1; shift
setup_report=${MCP_BASTION_SETUP_REPORT:-}
# The tests call hack's scripts themselves (each control plane, each tool): those calls are not set-up.
unset MCP_BASTION_SETUP_REPORT MCP_BASTION_SETUP_LOG
log=$(mktemp)
t0=$SECONDS
node --test --test-reporter=spec --test-concurrency="$concurrency" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
test_seconds=$((SECONDS - t0))
passed=$(grep -aE '^ℹ pass [0-9]+' "$log" | tail -1 | awk '{print $3}')
failed=$(grep -aE '^ℹ fail [0-9]+' "$log" | tail -1 | awk '{print $3}')
rm -f "$log"
# The reliability suite's table of scenarios and figures, when its files ran (they write to this dir).
if [ -n "${RELIABILITY_FIGURES_DIR:-}" ] && [ -d "$RELIABILITY_FIGURES_DIR" ]; then
  echo; node "$(dirname "$0")/reliability/summary.ts"; echo
fi
if [ -n "$setup_report" ] && [ -f "$setup_report" ]; then
  echo
  echo "Set-up of this run (a first run on a machine builds everything into ~/.cache/mcp-bastion; later runs reuse it):"
  grep -q '^npm packages' "$setup_report" || printf '  %-48s %s\n' "npm packages (npm ci)" "up to date (node_modules)"
  awk -F'\t' '{ total += $3; printf "  %-48s %s %5d s\n", $1, ($2 == "cache" ? "from the cache" : $2 == "system" ? "on PATH       " : "built         "), $3 }
              END { printf "  %-48s %s %5d s\n", "set-up total", "              ", total }' "$setup_report"
  rm -f "$setup_report"
fi
printf 'Tests: %d s (node --test, %s files at a time)\n' "$test_seconds" "$concurrency"
echo "${passed:-0} passed, ${failed:-0} failed"
exit "$status"
