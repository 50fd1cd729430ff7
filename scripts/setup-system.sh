#!/usr/bin/env bash
# Installs the system packages Modelship's demo and tests use on a fresh Debian machine:
# podman + runc + catatonit (Docker Engine API for the sandbox, `podman kube play`), PostgreSQL,
# Prometheus, git + git-lfs, wrk, docker-registry (the CNCF Distribution OCI registry), busybox-static,
# chromium (tests/ui).
# Idempotent: does nothing when everything is present.
set -euo pipefail
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v prometheus >/dev/null || need+=(prometheus)
command -v git >/dev/null || need+=(git)
command -v wrk >/dev/null || need+=(wrk)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v git-lfs >/dev/null || need+=(git-lfs)
command -v debootstrap >/dev/null || need+=(debootstrap)
# a static busybox: the tiny FROM-scratch test image of devkit.kubeapi
[ -x /bin/busybox ] || need+=(busybox-static)
command -v chromium >/dev/null || need+=(chromium)  # tests/ui drive it headless through Playwright
command -v catatonit >/dev/null || [ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts a prometheus service on install where systemd runs; we run our own instances.
fi
