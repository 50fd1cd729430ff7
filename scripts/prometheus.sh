#!/usr/bin/env bash
# Runs a private Prometheus (Debian's binary) for the demo: 1 s scrapes, targets added at run time.
#
#   scripts/prometheus.sh start                 # prints http://127.0.0.1:9091
#   scripts/prometheus.sh add-target 127.0.0.1:8001
#   scripts/prometheus.sh remove-target 127.0.0.1:8001
#   scripts/prometheus.sh stop
#
# MODELSHIP_PROMETHEUS_DIR (default /tmp/modelship-prometheus) holds config, data, targets and logs;
# MODELSHIP_PROMETHEUS_PORT (default 9091) is the loopback port. Idempotent: `start` on a running
# instance only prints its URL.
set -euo pipefail

DIR="${MODELSHIP_PROMETHEUS_DIR:-/tmp/modelship-prometheus}"
PORT="${MODELSHIP_PROMETHEUS_PORT:-9091}"
URL="http://127.0.0.1:$PORT"
BIN="$(command -v prometheus || echo /usr/bin/prometheus)"

ready() { curl -fsS "$URL/-/ready" >/dev/null 2>&1; }
target_file() { echo "$DIR/targets/${1//:/_}.json"; }

case "${1:-start}" in
  start)
    if ready; then echo "$URL"; exit 0; fi
    mkdir -p "$DIR/targets" "$DIR/data"
    cat >"$DIR/prometheus.yml" <<EOF
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: models
    file_sd_configs: [{files: ["$DIR/targets/*.json"], refresh_interval: 1s}]
EOF
    nohup "$BIN" --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
      --web.listen-address="127.0.0.1:$PORT" --storage.tsdb.retention.time=1d --log.level=warn \
      >"$DIR/prometheus.log" 2>&1 &
    echo $! >"$DIR/prometheus.pid"
    for _ in $(seq 100); do ready && { echo "$URL"; exit 0; }; sleep 0.1; done
    echo "prometheus did not become ready; see $DIR/prometheus.log" >&2
    exit 1
    ;;
  add-target)
    [ $# -ge 2 ] || { echo "usage: $0 add-target HOST:PORT" >&2; exit 2; }
    mkdir -p "$DIR/targets"
    file="$(target_file "$2")"
    printf '[{"targets": ["%s"], "labels": {}}]\n' "$2" >"$file.tmp"
    mv "$file.tmp" "$file"   # atomic: Prometheus never reads half a file
    ;;
  remove-target)
    [ $# -ge 2 ] || { echo "usage: $0 remove-target HOST:PORT" >&2; exit 2; }
    rm -f "$(target_file "$2")"
    ;;
  stop)
    if [ -f "$DIR/prometheus.pid" ]; then
      kill "$(cat "$DIR/prometheus.pid")" 2>/dev/null || true
      rm -f "$DIR/prometheus.pid"
    fi
    ;;
  *)
    echo "usage: $0 start | add-target HOST:PORT | remove-target HOST:PORT | stop" >&2
    exit 2
    ;;
esac
