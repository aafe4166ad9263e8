#!/usr/bin/env bash
# Runs node:test over the given files and ends with the plain summary line `N passed, N failed`.
set -uo pipefail
concurrency=$1; shift
log=$(mktemp)
node --test --test-reporter=spec --test-concurrency="$concurrency" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -aE '^ℹ pass [0-9]+' "$log" | tail -1 | awk '{print $3}')
failed=$(grep -aE '^ℹ fail [0-9]+' "$log" | tail -1 | awk '{print $3}')
rm -f "$log"
# The reliability suite's table of scenarios and figures, when its files ran (they write to this dir).
if [ -n "${RELIABILITY_FIGURES_DIR:-}" ] && [ -d "$RELIABILITY_FIGURES_DIR" ]; then
  echo; node "$(dirname "$0")/reliability/summary.ts"; echo
fi
echo "${passed:-0} passed, ${failed:-0} failed"
exit "$status"
