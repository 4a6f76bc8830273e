#!/usr/bin/env bash
# The lab's service manager command, what `systemctl restart mysql` is on a
# real host; agents use it as their restart_command. Runs inside the host's
# namespace.  svc.sh ROOTFS HOSTDIR restart|stop|start|status|kill [TIMEOUT_S]
# kill is `systemctl kill --signal=SIGKILL mysql`: the supervisor starts it again.
set -u
rootfs=$1
hostdir=$2
action=$3
timeout=${4:-30}
dir="$rootfs$hostdir"
pidfile="$dir/mysqld.pid.sup"

ping_mysqld() {
  chroot "$rootfs" /usr/bin/mysqladmin --connect-timeout=1 -uroot -S "$hostdir/mysqld.sock" ping >/dev/null 2>&1
}
wait_up() {
  local old=$1 deadline=$((SECONDS + timeout))
  while [ $SECONDS -lt "$deadline" ]; do
    if [ -e "$dir/disabled" ]; then
      echo "svc: mysqld on $hostdir is disabled and cannot start" >&2
      return 1
    fi
    local pid
    pid=$(cat "$pidfile" 2>/dev/null)
    if [ -n "$pid" ] && [ "$pid" != "$old" ] && ping_mysqld; then return 0; fi
    sleep 0.2
  done
  echo "svc: mysqld on $hostdir did not come up within ${timeout}s" >&2
  return 1
}

case "$action" in
restart)
  old=$(cat "$pidfile" 2>/dev/null)
  [ -n "$old" ] && kill -TERM "$old" 2>/dev/null
  wait_up "$old"
  ;;
stop)
  touch "$dir/disabled"
  old=$(cat "$pidfile" 2>/dev/null)
  [ -n "$old" ] && kill -TERM "$old" 2>/dev/null
  exit 0
  ;;
start)
  rm -f "$dir/disabled"
  wait_up ""
  ;;
kill)
  old=$(cat "$pidfile" 2>/dev/null)
  [ -n "$old" ] && kill -KILL "$old" 2>/dev/null
  exit 0
  ;;
status)
  ping_mysqld && echo running || { echo stopped; exit 3; }
  ;;
*)
  echo "svc: unknown action '$action' (expected restart, stop, start, status or kill)" >&2
  exit 2
  ;;
esac
