"""Artifact push benchmark: a model pushed as an OCI artifact, beside a plain HTTP upload of the same bytes.

Run: `.venv/bin/python bench/artifacts.py [--mb 50] [--runs 5]` (starts the loopback registry with
scripts/registry.sh when it is not running).
Rows, each against the same registry in the same run:
  - plain upload: one monolithic blob upload (POST + PUT of the raw file bytes) with `requests`;
  - artifact push: OciRegistry.push_model (layer tar built and hashed, config, blobs, manifest);
  - re-push: the same model again (target <= 100 ms: a HEAD on the manifest digest, one tag PUT).
Target (issue 14): artifact push <= 1.5x the plain upload.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.artifacts.registry import OciRegistry  # noqa: E402
from devkit.processes import registry_host  # noqa: E402


def plain_upload(host: str, repository: str, data: bytes) -> float:
    start = time.perf_counter()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    session = requests.post(f"http://{host}/v2/{repository}/blobs/uploads/", timeout=60)
    location = session.headers["Location"]
    url = location if location.startswith("http") else f"http://{host}{location}"
    sep = "&" if "?" in url else "?"
    done = requests.put(f"{url}{sep}digest={digest}", data=data, timeout=120)
    done.raise_for_status()
    return time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    host = registry_host()
    plain, push, repush = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            data = os.urandom(args.mb << 20)  # fresh bytes each run: nothing is already in the registry
            model = Path(tmp) / "model.onnx"
            model.write_bytes(data)
            prefix = f"bench{secrets.token_hex(3)}"
            plain.append(plain_upload(host, f"{prefix}/plain", data))
            registry = OciRegistry(host, insecure=True, prefix=prefix)
            kwargs = {"model_repo": "acme/churn", "model": "churn", "revision": "abc", "variant": "onnx"}
            start = time.perf_counter()
            first = await registry.push_model(model, **kwargs)
            push.append(time.perf_counter() - start)
            start = time.perf_counter()
            again = await registry.push_model(model, **kwargs, file_sha256=first.file_sha256)
            repush.append(time.perf_counter() - start)
            assert again.uploaded_bytes == 0
    base = statistics.median(plain)
    print(f"{args.mb} MB model, {args.runs} runs, registry {host}")
    print(f"{'step':<28} {'p50 s':>8} {'max s':>8} {'x plain':>8}  target")
    for name, values, target in (
        ("plain HTTP upload", plain, "baseline"),
        ("artifact push (oras-py)", push, "<= 1.5x"),
        ("re-push, same digest", repush, "<= 0.100 s"),
    ):
        p50 = statistics.median(values)
        print(f"{name:<28} {p50:8.3f} {max(values):8.3f} {p50 / base:8.2f}  {target}")


if __name__ == "__main__":
    asyncio.run(main())
