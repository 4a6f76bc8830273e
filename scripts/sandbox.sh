#!/usr/bin/env bash
# The main job, for now: a real 3-host MySQL 9.7 lab with replication, its
# topology printed. Later issues put an agent on every host.
#   npm run sandbox            bring it up (or show it, if it is up)
#   npm run sandbox -- down    remove it
#   npm run sandbox -- <lab command>   e.g. topology, fault isolate db1, fault heal
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null
export MHA_LAB_ID=sandbox
lab() { bash scripts/node24.sh test/lab/cli.ts "$@"; }
if [ $# -gt 0 ]; then
  lab "$@"
elif lab list | grep -qx sandbox; then
  lab topology
else
  lab up --hosts 3
  cat <<'MSG'

Try:  npm run sandbox -- fault kill-mysqld db1     (the supervisor restarts it)
      npm run sandbox -- fault isolate db2         then  npm run sandbox -- fault heal
      npm run sandbox -- mysql db2 "SHOW REPLICA STATUS"
      npm run sandbox -- topology
      npm run sandbox -- down
MSG
fi
