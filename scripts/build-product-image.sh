#!/usr/bin/env bash
# Builds the product image (bot + model server) with podman and pushes it to the loopback registry
# (scripts/registry.sh), so the charts' rendered manifests run as they are with `podman kube play`.
# Prints the pushed reference: REGISTRY/modelship/modelship:TAG.
#
# Nothing is pulled from a public registry: the base is a Debian root filesystem made by debootstrap,
# Python packages come from a wheelhouse built on the host by pip. Three cached stages, so a fresh
# clone on a machine that built once before only rebuilds the code layer (seconds):
#   modelship-base:bookworm-<packages hash>   debootstrap (about a minute, once per machine)
#   modelship-deps:<hash>     the venv with every dependency (minutes; again only when pyproject.toml changes)
#   modelship:<hash>          the modelship wheel of this tree (tag: hash of the sources)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${MODELSHIP_IMAGE_CACHE:-/var/tmp/modelship-image-cache}"  # outside the checkout: shared by clones
MIRROR="${MODELSHIP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PY="${PY:-$ROOT/.venv/bin/python}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-${MODELSHIP_PODMAN_DIR:-/tmp/modelship-podman}/containers.conf}"
REGISTRY="$("$ROOT/scripts/registry.sh" start)"
# Debian packages of the base: git for the model server's git source (`serve-model --git`; Git LFS objects
# are fetched by modelship's own client, contract/lfs.py, so git-lfs is not needed in the image).
PACKAGES=python3,python3-venv,ca-certificates,git
BASE="localhost/modelship-base:bookworm-$(echo "$PACKAGES" | sha256sum | cut -c1-8)"
ROOTFS_TAR="$CACHE/rootfs-${BASE##*:}.tar"
DEPS="localhost/modelship-deps:$(cat "$ROOT/pyproject.toml" "$ROOT/images/deps.Containerfile" <(echo "$BASE") | sha256sum | cut -c1-12)"
TAG="$(cd "$ROOT" && { echo "$DEPS"; git ls-files -s bot pipelines contract model_server pyproject.toml images; git diff -- bot pipelines contract model_server pyproject.toml images; } | sha256sum | cut -c1-12)"
IMAGE="$REGISTRY/modelship/modelship:$TAG"
say() { echo "build-product-image: $*" >&2; }

if podman image exists "$IMAGE" && curl -fsS -o /dev/null "http://$REGISTRY/v2/modelship/modelship/manifests/$TAG" \
   -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'; then
  echo "$IMAGE"; exit 0
fi
mkdir -p "$CACHE"
CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
mkdir -p "$CONTEXT/wheels"

if ! podman image exists "$DEPS"; then
  if ! podman image exists "$BASE"; then
    if [ ! -s "$ROOTFS_TAR" ]; then
      say "debootstrap bookworm (about a minute)"
      ROOTFS="$(mktemp -d "$CACHE/rootfs.XXXXXX")" && chmod 755 "$ROOTFS"  # the image's / (mktemp makes it 0700)
      debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" "$MIRROR" >&2
      tar -C "$ROOTFS" -cf "$ROOTFS_TAR.part" . && mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
      rm -rf "$ROOTFS"
    fi
    podman import -q "$ROOTFS_TAR" "$BASE" >/dev/null
  fi
  say "wheelhouse of modelship[pipelines]'s dependencies (a few minutes, once per pyproject.toml)"
  "$PY" -m pip wheel -q --wheel-dir "$CACHE/wheelhouse" "$ROOT[pipelines]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  cp "$CACHE"/wheelhouse/*.whl "$CONTEXT/wheels/"
  ls -t "$CONTEXT"/wheels/modelship-*.whl | tail -n +2 | xargs -r rm -f
  say "podman build $DEPS"
  podman build -q --network=none --build-arg "BASE=$BASE" -f "$ROOT/images/deps.Containerfile" -t "$DEPS" "$CONTEXT" >/dev/null
  rm -f "$CONTEXT"/wheels/*.whl
fi

say "podman build $IMAGE"
"$PY" -m pip wheel -q --no-deps --wheel-dir "$CONTEXT/wheels" "$ROOT" 2>&1 | grep -v "^WARNING: Location" >&2 || true
podman build -q --network=none --build-arg "DEPS=$DEPS" -f "$ROOT/images/product.Containerfile" -t "$IMAGE" "$CONTEXT" >/dev/null
podman push -q --tls-verify=false "$IMAGE" >&2
echo "$IMAGE"
