#!/usr/bin/env bash
# The reliability suite alone (issue 6): hostile McpServer specs, adversarial gateway requests,
# control-plane and upstream faults, the soak. Prints every scenario, the summary table of figures,
# and ends with the `N passed, N failed` line.
#   hack/reliability.sh            short variants (what `make test` runs; soak 1 minute)
#   hack/reliability.sh --long     RELIABILITY_LONG=1: soak 10 minutes, bigger batches and more runs
#   SOAK_SECONDS=N                 any soak length
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
[ "${1:-}" = "--long" ] && export RELIABILITY_LONG=1
RELIABILITY_FIGURES_DIR=$(mktemp -d -t mcp-bastion-reliability.XXXXXX)
export RELIABILITY_FIGURES_DIR
trap 'rm -rf "$RELIABILITY_FIGURES_DIR"' EXIT
test/run-tests.sh "${TEST_CONCURRENCY:-2}" test/reliability/*.test.ts
