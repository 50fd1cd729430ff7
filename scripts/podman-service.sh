#!/usr/bin/env bash
# Starts a private podman service that speaks the Docker Engine API, for the sandbox runner.
#
#   scripts/podman-service.sh          # prints unix:///tmp/modelship-podman/podman.sock
#   MODELSHIP_PODMAN_DIR=/x scripts/podman-service.sh
#   scripts/podman-service.sh --stop
#
# Idempotent and safe to call concurrently (tests call it from several sessions): when the socket
# already answers it only prints its URL. All state (storage, runtime dir, logs) lives under the
# state dir, so it never touches the machine's default podman storage.
#
# Settings that make podman work on this kind of machine (cgroup v1 hybrid, no CAP_SYS_RESOURCE):
# runtime runc (crun fails on hybrid cgroups), cgroupfs manager, and default ulimits no higher
# than the current ones — raising one fails with "operation not permitted".
set -euo pipefail

DIR="${MODELSHIP_PODMAN_DIR:-/tmp/modelship-podman}"
SOCK="$DIR/podman.sock"
URL="unix://$SOCK"

mkdir -p "$DIR"
chmod 700 "$DIR"
export CONTAINERS_CONF="$DIR/containers.conf"
export CONTAINERS_STORAGE_CONF="$DIR/storage.conf"

answers() { curl -fsS --max-time 5 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
# Alive and not a zombie (an exited service nobody reaped must not count).
running() {
  local state
  [ -f "$DIR/service.pid" ] || return 1
  state="$(ps -o stat= -p "$(cat "$DIR/service.pid")" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

# Polls up to $1 times, 0.1 s apart; prints the URL once the service answers.
await_service() {
  for _ in $(seq 1 "$1"); do
    if answers; then
      echo "$URL"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

stop() {
  if [ -f "$DIR/service.pid" ]; then
    pid="$(cat "$DIR/service.pid")"
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi
    rm -f "$DIR/service.pid"
  fi
}

if [ "${1:-}" = "--stop" ]; then
  stop
  exit 0
fi

exec 9>"$DIR/lock"
flock 9

if answers; then
  echo "$URL"
  exit 0
fi
# A live service that is slow to answer (a loaded machine) is never restarted under other users' runs.
if running; then
  await_service 300 && exit 0
  echo "podman-service: pid $(cat "$DIR/service.pid") runs but $SOCK does not answer;" \
    "restart it with: $0 --stop && $0" >&2
  exit 1
fi

# A soft limit above the current one cannot be set without CAP_SYS_RESOURCE: clamp to what we have.
nofile="$(ulimit -n)"; [ "$nofile" = unlimited ] || [ "$nofile" -gt 1024 ] && nofile=1024
nproc="$(ulimit -u)"; [ "$nproc" = unlimited ] || [ "$nproc" -gt 1024 ] && nproc=1024

cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$DIR/events.log"
tmp_dir = "$DIR/libpod-tmp"
volume_path = "$DIR/volumes"
EOF

cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
runroot = "$DIR/run"
graphroot = "$DIR/storage"
EOF

rm -f "$SOCK"
# From its own directory: conmon writes an `oom` marker into the cwd of the service when a container is
# OOM-killed, which would otherwise land in whatever checkout started it.
cd "$DIR"
setsid nohup podman system service --time=0 "$URL" >>"$DIR/service.log" 2>&1 </dev/null 9>&- &
echo $! >"$DIR/service.pid"

await_service 300 && exit 0
echo "podman-service: the service did not answer on $SOCK within 30 s; see $DIR/service.log" >&2
tail -n 20 "$DIR/service.log" >&2 || true
exit 1
