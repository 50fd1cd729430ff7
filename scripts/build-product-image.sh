#!/usr/bin/env bash
# Builds the product image (bot + model server, images/product.Containerfile) with podman and pushes
# it to the loopback registry (scripts/registry.sh), so the charts' rendered manifests run as they are
# with `podman kube play`. Prints the pushed reference (REGISTRY/modelship/modelship:TAG).
#
# Nothing is pulled from a public registry: the base is a Debian root filesystem made by debootstrap
# (cached in $CACHE), Python packages come from a wheelhouse built on the host by pip. The tag is a
# hash of the sources and pyproject.toml, so an unchanged tree reuses the image it built before.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${MODELSHIP_IMAGE_CACHE:-$ROOT/.modelship/image-cache}"
MIRROR="${MODELSHIP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE=localhost/modelship-base:bookworm
PY="${PY:-$ROOT/.venv/bin/python}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-/tmp/modelship-podman/containers.conf}"
REGISTRY="$("$ROOT/scripts/registry.sh" start)"

TAG="$(cd "$ROOT" && git ls-files -s bot pipelines contract model_server pyproject.toml images | sha256sum | cut -c1-12)"
if ! git -C "$ROOT" diff --quiet -- bot pipelines contract model_server pyproject.toml images 2>/dev/null; then
  TAG="$TAG-$(cd "$ROOT" && git diff -- bot pipelines contract model_server pyproject.toml images | sha256sum | cut -c1-8)"
fi
IMAGE="$REGISTRY/modelship/modelship:$TAG"
if podman image exists "$IMAGE" && curl -fsS -o /dev/null "http://$REGISTRY/v2/modelship/modelship/manifests/$TAG" \
   -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'; then
  echo "$IMAGE"; exit 0
fi

mkdir -p "$CACHE"
if ! podman image exists "$BASE"; then
  if [ ! -s "$CACHE/rootfs.tar" ]; then
    echo "build-product-image: debootstrap bookworm (about a minute)" >&2
    rm -rf "$CACHE/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$CACHE/rootfs" "$MIRROR" >&2
    tar -C "$CACHE/rootfs" -cf "$CACHE/rootfs.tar.part" . && mv "$CACHE/rootfs.tar.part" "$CACHE/rootfs.tar"
    rm -rf "$CACHE/rootfs"
  fi
  podman import -q "$CACHE/rootfs.tar" "$BASE" >/dev/null
fi

CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
echo "build-product-image: wheelhouse (modelship[pipelines] and its dependencies)" >&2
"$PY" -m pip wheel -q --wheel-dir "$CACHE/wheelhouse" "$ROOT[pipelines]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
# Only this tree's modelship wheel: older ones in the cache would satisfy the install instead.
ls -t "$CACHE"/wheelhouse/modelship-*.whl | tail -n +2 | xargs -r rm -f
cp -r "$CACHE/wheelhouse" "$CONTEXT/wheelhouse"
echo "build-product-image: podman build $IMAGE" >&2
podman build -q --network=none -f "$ROOT/images/product.Containerfile" -t "$IMAGE" "$CONTEXT" >/dev/null
podman push -q --tls-verify=false "$IMAGE" >&2
echo "$IMAGE"
