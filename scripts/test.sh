#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then
# typecheck, lint, and every test (unit, simulator, real-MySQL lab, package
# install tests) in one run of node's test runner. Labs made by this run are removed at the end, also
# when a test fails or the run is interrupted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

export MHA_LAB_ID_PREFIX="c$(printf '%04x' $((RANDOM % 65536)))"
cleanup() { bash scripts/node24.sh test/lab/cli.ts down --prefix "$MHA_LAB_ID_PREFIX" >/dev/null || true; }
trap cleanup EXIT

echo "== typecheck"
npx --no-install tsc -p tsconfig.json --noEmit
echo "== lint"
npx --no-install biome check .
echo "== tests"
bash scripts/node24.sh --test --test-concurrency="${MHA_TEST_CONCURRENCY:-1}" --test-reporter=spec \
  'test/unit/**/*.test.ts' 'test/sim/**/*.test.ts' 'test/bench/**/*.test.ts' 'test/lab/**/*.test.ts' 'test/pkg/**/*.test.ts'
