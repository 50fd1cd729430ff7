# syntax=docker/dockerfile:1
# Production image for the Modelship sandbox: what `python -m pipelines.<entry>` runs in.
#
#   docker build -f bot/sandbox/runner.Dockerfile -t ghcr.io/<org>/modelship-runner:<version> .
#
# Same layout as the locally built `modelship-runner:local` (bot/sandbox/local_image.py), so the
# runner treats them alike: /inputs (read-only inputs), /scratch and /tmp (tmpfs the runner caps),
# /out (the only writable mount; the pipeline writes /out/result.json), uid/gid 65534.
# The runner needs no runtime mounts for this image: DockerEngineRunner(client) is enough.
#
# Not buildable on the development machine (no registry for python:3.11-slim); there,
# scripts/build-runner-image.sh builds the local equivalent.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    LANG=C.UTF-8

# libgomp: scikit-learn's OpenMP runtime on slim images.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

# Installs `modelship[pipelines]` from this checkout (runner.Dockerfile.dockerignore next to this file keeps
# the context to the package sources); use `pip install modelship[pipelines]==X` for a release.
COPY . /src
RUN pip install "/src[pipelines]" && rm -rf /src

RUN mkdir -p /inputs /out /opt/modelship \
 && install -d -m 1777 /scratch \
 && chown 65534:65534 /out

WORKDIR /opt/modelship
USER 65534:65534
LABEL io.modelship.runner="production"
CMD ["python", "-c", "import pipelines, sklearn, onnxruntime; print('modelship runner ok')"]
