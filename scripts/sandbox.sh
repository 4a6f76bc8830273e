#!/usr/bin/env bash
# The main job: a 3-host MySQL 9.7 cluster with an agent per host, the VIP and
# a writer, left running to play with (see test/lab/sandbox.ts for commands).
#   npm run sandbox            bring it up (or show it, if it is up)
#   npm run sandbox -- down    remove it
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null
exec bash scripts/node24.sh test/lab/sandbox.ts "$@"
