#!/usr/bin/env bash
# Runs a private OCI registry (Debian's docker-registry: the CNCF Distribution registry) for the demo
# and the tests: model artifacts and the product image are pushed here.
#
#   scripts/registry.sh start     # prints HOST:5055 (plain HTTP)
#
# HOST is this machine's own address (the source address of its default route), not 127.0.0.1: pods
# that `podman kube play` runs fetch artifacts from it, and inside a pod 127.0.0.1 is the pod itself.
# Set MODELSHIP_REGISTRY_HOST to choose another (127.0.0.1 keeps it off the network entirely).
#   scripts/registry.sh stop
#
# MODELSHIP_REGISTRY_DIR (default /tmp/modelship-registry) holds config, blobs and the log;
# MODELSHIP_REGISTRY_PORT (default 5055) is the loopback port. Idempotent: `start` on a running
# instance only prints its address.
set -euo pipefail

DIR="${MODELSHIP_REGISTRY_DIR:-/tmp/modelship-registry}"
PORT="${MODELSHIP_REGISTRY_PORT:-5055}"
HOST="${MODELSHIP_REGISTRY_HOST:-$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')}"
ADDR="${HOST:-127.0.0.1}:$PORT"
BIN="$(command -v docker-registry || echo /usr/bin/docker-registry)"

ready() { curl -fsS "http://$ADDR/v2/" >/dev/null 2>&1; }

case "${1:-start}" in
  start)
    if ready; then echo "$ADDR"; exit 0; fi
    [ -x "$BIN" ] || { echo "docker-registry is not installed: run scripts/setup-system.sh" >&2; exit 1; }
    mkdir -p "$DIR/data"
    cat >"$DIR/config.yml" <<CONF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $DIR/data}
  delete: {enabled: true}
http:
  addr: $ADDR
CONF
    nohup "$BIN" serve "$DIR/config.yml" >"$DIR/registry.log" 2>&1 &
    echo $! >"$DIR/registry.pid"
    for _ in $(seq 100); do ready && { echo "$ADDR"; exit 0; }; sleep 0.1; done
    echo "the registry did not become ready; see $DIR/registry.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$DIR/registry.pid" ]; then
      kill "$(cat "$DIR/registry.pid")" 2>/dev/null || true
      rm -f "$DIR/registry.pid"
    fi
    ;;
  *)
    echo "usage: $0 start | stop" >&2
    exit 2
    ;;
esac
