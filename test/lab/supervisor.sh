#!/usr/bin/env bash
# A small restarting supervisor for one lab host's mysqld: it plays the part of
# the service manager (systemd's Restart=always), so that a crashed mysqld
# comes back and CLONE's restart works. Runs inside the host's namespace.
#   supervisor.sh ROOTFS HOSTDIR      (HOSTDIR is the path inside ROOTFS)
# Files in ROOTFS/HOSTDIR: `disabled` (present: do not start mysqld, the
# "stopped so it cannot restart" fault), `mysqld.pid.sup` (the running child),
# `supervisor.log` (one line per start and exit).
set -u
rootfs=$1
hostdir=$2
dir="$rootfs$hostdir"
delay=${MHA_LAB_RESTART_DELAY:-1}
child=
echo $$ >"$dir/supervisor.pid"
trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; [ -n "$child" ] && wait "$child"; exit 0' TERM INT
while :; do
  if [ -e "$dir/disabled" ]; then
    sleep 0.2
    continue
  fi
  # chroot execs mysqld, so $! is mysqld's own pid.
  chroot "$rootfs" /usr/sbin/mysqld --defaults-file="$hostdir/my.cnf" >>"$dir/mysqld.out" 2>&1 &
  child=$!
  echo "$child" >"$dir/mysqld.pid.sup"
  echo "$(date +%s.%N) started $child" >>"$dir/supervisor.log"
  wait "$child"
  rc=$?
  echo "$(date +%s.%N) exited $child status $rc" >>"$dir/supervisor.log"
  rm -f "$dir/mysqld.pid.sup"
  child=
  sleep "$delay"
done
