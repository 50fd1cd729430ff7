#!/usr/bin/env bash
# Builds the sandbox runner image `modelship-runner:local` on the local podman service, with no
# registry: FROM scratch + the system libraries the venv needs; the Python runtime, the venv's
# site-packages, pipelines/ and contract/ are bind-mounted read-only at run time (bot/sandbox/local_image.py).
#
#   scripts/build-runner-image.sh            # reuses the image when it is already up to date
#   scripts/build-runner-image.sh --force    # rebuild (e.g. after adding a compiled package)
#
# MODELSHIP_DOCKER_URL picks another engine (default: the one scripts/podman-service.sh starts).
# Production uses bot/sandbox/runner.Dockerfile instead (needs a registry for python:3.11-slim).
set -euo pipefail
cd "$(dirname "$0")/.."
URL="${MODELSHIP_DOCKER_URL:-$(scripts/podman-service.sh)}"
exec "${PYTHON:-.venv/bin/python}" -m bot.sandbox.local_image --url "$URL" "$@"
