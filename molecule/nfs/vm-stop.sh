#!/usr/bin/env bash
# Stop the scenario's VMs by their pid files (molecule/nfs/create.yml writes them), and only a
# process that is the VM of that name (qemu started with -name multijhub-NAME); remove their
# overlays and pid files.   vm-stop.sh RUN_DIR NAME...
set -euo pipefail
run=${1:?usage: vm-stop.sh RUN_DIR NAME...}
shift
for name in "$@"; do
  pidfile=$run/$name.pid
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-name multijhub-$name "; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      echo "stopped $name (pid $pid)"
    fi
  fi
  rm -f "$pidfile" "$run/$name.qcow2"
done
