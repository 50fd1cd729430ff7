"""Run what a chart renders: ``podman kube play`` as the closest thing to a kubelet on this machine.

The manifests are Helm's own output, unchanged: podman runs the Deployments and Pods in them and
ignores the kinds it has no use for (Service, ServiceAccount, PodDisruptionBudget, …). Each pod gets
an address on podman's bridge network that the host reaches directly, which is how Prometheus and
the tests talk to it, as they would to a pod IP in a cluster.

Known here (podman 4.3): init containers fail ("failed to remove once init container"), which is
why the model-server chart fetches its artifact in the serving container itself; every containerPort
is also published on the host, so only one replica of a Deployment can run (the others fail to bind),
and an emptyDir becomes a podman volume named after it, shared by every pod that names it alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PODMAN_STATE = Path(os.environ.get("MODELSHIP_PODMAN_DIR", "/tmp/modelship-podman"))  # scripts/podman-service.sh


@dataclass(frozen=True)
class PlayedContainer:
    name: str  # podman's name: <pod>-<container>
    pod: str
    ip: str
    running: bool
    exit_code: int | None
    restarts: int


def podman_env() -> dict[str, str]:
    """The podman configuration the project's service uses (runc, cgroupfs, lowered ulimits)."""
    return {**os.environ, "CONTAINERS_CONF": str(PODMAN_STATE / "containers.conf")}


def _podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, env=podman_env(), timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:2])} failed: {done.stderr.strip()[-2000:]}")
    return done


class KubePlay:
    """Plays rendered manifests; ``down`` removes everything a ``play`` started."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.files: list[Path] = []

    def play(self, documents: Iterable[Mapping[str, Any]], *, name: str, tls_verify: bool = False) -> Path:
        path = self.workdir / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False))
        self.files.append(path)  # before playing: `down` also cleans up a play that failed half-way
        _podman("kube", "play", "--replace", f"--tls-verify={'true' if tls_verify else 'false'}", str(path))
        return path

    def containers(self, deployment: str, container: str) -> list[PlayedContainer]:
        """The named container of each pod of ``deployment`` (pods are ``<deployment>-pod-<i>``)."""
        listed = _podman("ps", "-a", "--format", "json").stdout
        found = []
        for entry in json.loads(listed or "[]"):
            names = entry.get("Names") or []
            if not any(n.startswith(f"{deployment}-pod-") and n.endswith(f"-{container}") for n in names):
                continue
            inspect = json.loads(_podman("inspect", entry["Id"]).stdout)[0]
            networks = inspect["NetworkSettings"].get("Networks") or {}
            ip = next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), "")
            state = inspect["State"]
            running = bool(state.get("Running"))
            code = None if running else state.get("ExitCode")
            restarts = int(inspect.get("RestartCount") or 0)
            pod = names[0].removesuffix(f"-{container}")
            found.append(PlayedContainer(names[0], pod, ip, running, code, restarts))
        return sorted(found, key=lambda c: c.pod)

    def logs(self, container: str, tail: int = 50) -> str:
        done = _podman("logs", "--tail", str(tail), container, check=False)
        return done.stdout + done.stderr

    def wait(self, deployment: str, container: str, replicas: int, *, timeout: float = 120) -> list[PlayedContainer]:
        """Until ``replicas`` containers run (or one has exited: then its logs say why)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.containers(deployment, container)
            exited = [c for c in found if c.restarts or (not c.running and c.exit_code is not None)]
            if exited:
                raise RuntimeError(f"{exited[0].name} exited {exited[0].exit_code}:\n{self.logs(exited[0].name)}")
            if len([c for c in found if c.running and c.ip]) >= replicas:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{deployment}: {len(found)} of {replicas} containers running after {timeout}s")
            time.sleep(0.25)

    def first_exit(self, deployment: str, container: str, *, timeout: float = 60) -> str:
        """The logs of the first of ``deployment``'s containers to exit (the restart policy restarts it)."""
        try:
            self.wait(deployment, container, replicas=1 << 30, timeout=timeout)
        except RuntimeError as exc:
            return str(exc)
        raise AssertionError("unreachable")

    def down(self) -> None:
        for path in reversed(self.files):
            _podman("kube", "down", str(path), check=False)
        self.files.clear()
