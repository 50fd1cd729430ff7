"""The helper processes the demo, the tests and the benchmarks start: one launcher each.

- Prometheus (Debian's binary): 1 s scrapes, targets added and removed at run time through file_sd
  (model server processes by address; pods that devkit.gitops_sync plays, by their annotations);
- model servers (``python -m model_server.serve``, fault injection on), subprocesses so that no
  process of ours imports onnxruntime;
- the shared podman service and the loopback OCI registry (scripts/podman-service.sh and
  scripts/registry.sh, which the Makefile and the image builds run too: idempotent, safe to call
  concurrently);
- a throw-away PostgreSQL cluster (Debian packages).

Everything here blocks (subprocess, urllib); async callers run it in a thread.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"
SCRAPE_INTERVAL = 1.0
# The production model server's module; the one place the launchers name it.
MODEL_SERVER_MODULE = "model_server.serve"
PODMAN_DIR = Path(os.environ.get("MODELSHIP_PODMAN_DIR", "/tmp/modelship-podman"))  # as podman-service.sh


class ProcessError(Exception):
    """A helper process did not start; the message names it and quotes its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Process:
    """A subprocess with a log file, ready once ``ready_url`` answers 200."""

    name: str
    argv: list[str]
    log: Path
    ready_url: str
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def start(self, timeout: float = 60.0) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise ProcessError(f"{self.name} exited with {self.popen.returncode}: {self._tail()}")
            if _ready(self.ready_url):
                return
            time.sleep(0.1)
        self.stop()
        raise ProcessError(f"{self.name} was not ready within {timeout:g}s: {self._tail()}")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"


class Prometheus:
    """A private Prometheus under ``root`` on a free loopback port.

    Targets are registered at run time through file_sd_configs (Prometheus picks a new one up within
    about 5 s: its discovery updates are throttled), so model servers come and go without a restart.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets_dir = root / "targets"
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        config = root / "prometheus.yml"
        config.write_text(self.config())
        self.process = Process(
            "prometheus",
            [
                PROMETHEUS_BINARY,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            root / "prometheus.log",
            f"{self.url}/-/ready",
        )

    def config(self) -> str:
        return json.dumps(  # JSON is YAML, and needs no extra dependency
            {
                "global": {"scrape_interval": f"{SCRAPE_INTERVAL:g}s", "scrape_timeout": f"{SCRAPE_INTERVAL:g}s"},
                "scrape_configs": [
                    {
                        "job_name": "models",
                        "file_sd_configs": [{"files": [str(self.targets_dir / "*.json")], "refresh_interval": "1s"}],
                    },
                    {
                        # Pods played from a chart (devkit.gitops_sync), discovered the way the chart's
                        # prometheus.io/* annotations ask a cluster's Prometheus to: address = pod IP and
                        # the annotated port, __metrics_path__ = the annotated path, plus namespace/pod.
                        # The server's own model/version/env labels win over the target's (honor_labels),
                        # so the guard's PromQL reads the same series either way.
                        "job_name": "kubernetes-pods",
                        "honor_labels": True,
                        "file_sd_configs": [
                            {"files": [str(self.targets_dir / "pods" / "*.json")], "refresh_interval": "1s"}
                        ],
                    },
                ],
            },
            indent=2,
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self, timeout: float = 30.0) -> None:
        self.process.start(timeout)

    def stop(self) -> None:
        self.process.stop()

    def add_target(self, address: str, **labels: str) -> None:
        """Scrape ``address`` (host:port, path /metrics) from the next file_sd refresh on."""
        path = self.targets_dir / f"{address.replace(':', '_')}.json"
        staging = path.with_suffix(".tmp")
        staging.write_text(json.dumps([{"targets": [address], "labels": labels}]))
        os.replace(staging, path)  # atomic: Prometheus never reads half a file

    def set_pod_targets(self, group: str, targets: list[tuple[str, dict[str, str]]]) -> None:
        """Replace the pod targets of ``group`` (one file per discoverer) with ``targets``: (host:port,
        labels) pairs; a ``__metrics_path__`` label sets the scrape path. An empty list removes them."""
        folder = self.targets_dir / "pods"
        folder.mkdir(exist_ok=True)
        path = folder / f"{group}.json"
        if not targets:
            path.unlink(missing_ok=True)
            return
        staging = path.with_suffix(".tmp")
        staging.write_text(json.dumps([{"targets": [address], "labels": labels} for address, labels in targets]))
        os.replace(staging, path)

    def remove_target(self, address: str) -> None:
        (self.targets_dir / f"{address.replace(':', '_')}.json").unlink(missing_ok=True)

    def query(self, promql: str) -> Any:
        """Blocking instant query; returns the ``data.result`` list."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)["data"]["result"]

    def wait_for(self, promql: str, timeout: float = 20.0) -> Any:
        """Poll until ``promql`` returns a non-empty result (e.g. ``up{instance="..."} == 1``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.2)
        raise TimeoutError(f"Prometheus returned nothing for {promql!r} within {timeout:g}s")


@dataclass
class ModelServer:
    """One model version served on a loopback port (not started until ``start``)."""

    process: Process
    port: int
    version: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 60.0) -> None:
        self.process.start(timeout)

    def stop(self) -> None:
        self.process.stop()


def model_server(
    model: Path,
    *,
    name: str,
    version: str,
    sha256: str,
    env: str,
    log: Path,
    port: int | None = None,
    variant: str = "original",
) -> ModelServer:
    """The production model server for one version, with fault injection on (demo and tests only)."""
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        MODEL_SERVER_MODULE,
        *("--model", str(model), "--name", name, "--version", version, "--sha256", sha256),
        *("--env", env, "--variant", variant, "--port", str(port), "--allow-fault-injection"),
    ]
    process = Process(f"model server {name}@{version[:7]}", argv, log, f"http://127.0.0.1:{port}/v2/health/ready")
    return ModelServer(process, port, version)


def _script(name: str, *args: str, timeout: float = 120) -> str:
    """Run one of scripts/*.sh; returns the last line it printed (the URL or address)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / name), *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if done.returncode != 0:
        raise ProcessError(f"scripts/{name} failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def podman_url() -> str:
    """URL of the shared podman service (Docker Engine API), started when not running."""
    return _script("podman-service.sh")


def podman_cpu_seconds() -> float:
    """CPU time the shared podman service has used so far (user + system)."""
    pid = (PODMAN_DIR / "service.pid").read_text().strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def registry_host() -> str:
    """host:port of the shared OCI registry (plain HTTP), started when not running: this machine's own
    address, not loopback, so that pods `podman kube play` runs can fetch from it too."""
    return _script("registry.sh", "start")


def product_image() -> str:
    """The product image (bot + model server) built from this tree and pushed to the shared registry.

    The first build on a machine takes minutes (debootstrap, the dependency layer); after that only the
    code layer is rebuilt, in seconds (scripts/build-product-image.sh)."""
    return _script("build-product-image.sh", timeout=1800)


def _as_postgres(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the Debian package creates the `postgres` user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class PostgresCluster:
    """A throw-away PostgreSQL cluster on a loopback port (no fsync: data is disposable)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise ProcessError("PostgreSQL is not installed: run `make setup` (scripts/setup-system.sh)")
        self.bindir = Path(found[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="modelship-pg-"))
        self.port = free_port()

    @property
    def url(self) -> str:
        """Base URL without a database name."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    def start(self) -> None:
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(sock, "postgres")
        initdb = [str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"]
        subprocess.run(_as_postgres([*initdb, "-E", "UTF8"]), check=True, capture_output=True)
        opts = f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        pg_ctl = [str(self.bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l", str(self.root / "log")]
        subprocess.run(_as_postgres([*pg_ctl, "start"]), check=True, capture_output=True)

    def stop(self) -> None:
        pg_ctl = [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"]
        subprocess.run(_as_postgres(pg_ctl), capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
