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

answers() { curl -fsS --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }

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

stop
rm -f "$SOCK"
setsid nohup podman system service --time=0 "$URL" >>"$DIR/service.log" 2>&1 </dev/null 9>&- &
echo $! >"$DIR/service.pid"

for _ in $(seq 1 100); do
  if answers; then
    echo "$URL"
    exit 0
  fi
  sleep 0.1
done
echo "podman-service: the service did not answer on $SOCK within 10 s; see $DIR/service.log" >&2
tail -n 20 "$DIR/service.log" >&2 || true
exit 1
