"""Run what a chart renders: ``podman kube play`` as the closest thing to a kubelet on this machine.

The manifests are Helm's own output: podman runs the Deployments and Pods in them and ignores the
kinds it has no use for (Service, ServiceAccount, PodDisruptionBudget, …). Each pod gets an address
on podman's bridge network that the host reaches directly, which is how Prometheus and the tests talk
to it, as they would to a pod IP in a cluster.

Limits of podman 4.3 (the only version Debian 12 has), seen on this machine, and what is done about them:

- Init containers fail ("failed to remove once init container … as it is running"): the model-server
  chart fetches its artifact in the serving container itself (``model.artifact``); its ``modelSource``
  path (an init container pulling ``curlimages/curl``) cannot run here.
- Every ``containerPort`` is also published on the host (hostPort = containerPort), so a second
  replica of a Deployment, or any other pod with the same port (another environment, another test),
  fails to start with "address already in use". In Kubernetes a containerPort publishes nothing.
  ``KubePlay.play`` plays manifests as rendered (one replica only); ``podman_pod`` (what
  devkit.gitops_sync plays) drops the publication of ports that have no ``hostPort``, so any number
  of pods listen on the same port, each on its own pod IP, as in a cluster.
- Probes are not run: podman turns a livenessProbe into a healthcheck that needs systemd timers (none
  here), and a named port (``port: http``) becomes ``curl localhost:0``; readinessProbe is ignored.
  ``podman_pod`` leaves them out and devkit.gitops_sync probes readiness itself (httpGet on the pod
  IP), the way a kubelet does.
- A Deployment is played as ``replicas`` pods named ``<name>-pod-<i>``, and ``--replace`` removes them
  all before creating the new ones: no rolling update. devkit.gitops_sync plays Pods and rolls them
  (maxSurge / maxUnavailable of the Deployment's strategy) like a Deployment controller.
- An emptyDir becomes a podman volume named after it, shared by every pod that names it alike (two
  versions would share one /models): ``podman_pod`` gives each pod's emptyDirs names of their own.
- The restart policy is honoured (a crashing container is restarted); a pod has no namespace, so pod
  names carry the environment and the sync's instance.
"""

from __future__ import annotations

import copy
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


# Keys of a container that podman 4.3 turns into something other than what Kubernetes means (see above).
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def podman_pod(template: Mapping[str, Any], *, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The Pod a Deployment's ``template`` makes, named ``name``, as podman 4.3 must be told to run it
    with Kubernetes' meaning: ports without hostPort not published, probes left to the caller,
    emptyDirs private to the pod (volume names prefixed with the pod's)."""
    spec = copy.deepcopy(dict(template.get("spec") or {}))
    metadata = template.get("metadata") or {}
    renamed = {
        v["name"]: f"{name}-{v['name']}" for v in spec.get("volumes") or [] if isinstance(v.get("emptyDir"), dict)
    }
    for volume in spec.get("volumes") or []:
        volume["name"] = renamed.get(volume["name"], volume["name"])
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        ports = [p for p in container.get("ports") or [] if p.get("hostPort")]
        if ports:
            container["ports"] = ports
        else:
            container.pop("ports", None)
        for probe in _PROBES:
            container.pop(probe, None)
        for mount in container.get("volumeMounts") or []:
            mount["name"] = renamed.get(mount["name"], mount["name"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {**(metadata.get("labels") or {}), **labels},
            "annotations": dict(metadata.get("annotations") or {}),
        },
        "spec": spec,
    }


def play_pod(pod: Mapping[str, Any], path: Path, *, tls_verify: bool = False) -> None:
    """``podman kube play --replace`` of one Pod document, kept at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(pod), sort_keys=False))
    _podman("kube", "play", "--replace", "--quiet", f"--tls-verify={'true' if tls_verify else 'false'}", str(path))


def remove_pod(name: str, *, grace: int = 2) -> None:
    """Remove a pod and its containers (SIGTERM, SIGKILL after ``grace`` seconds) and its volumes."""
    _podman("pod", "rm", "--force", "--ignore", "-t", str(grace), name, check=False)
    listed = _podman("volume", "ls", "--quiet", "--filter", f"name=^{name}-", check=False).stdout.split()
    if listed:
        _podman("volume", "rm", "--force", *listed, check=False)


@dataclass(frozen=True)
class ContainerState:
    name: str  # podman's: <pod>-<container>
    running: bool
    exit_code: int | None
    labels: Mapping[str, str]


def container_states(label: str) -> list[ContainerState]:
    """Every (non-infra) container whose pod carries ``label`` (``key=value``), in one ``podman ps``."""
    listed = json.loads(_podman("ps", "-a", "--filter", f"label={label}", "--format", "json").stdout or "[]")
    found = []
    for entry in listed:
        if entry.get("IsInfra"):
            continue
        labels = entry.get("Labels") or {}
        running = entry.get("State") == "running"
        name = (entry.get("Names") or [""])[0]
        found.append(ContainerState(name, running, None if running else entry.get("ExitCode"), labels))
    return found


def container_ip(name: str) -> str:
    """The pod IP of a container ("" while it has none)."""
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    done = _podman("inspect", "--format", template, name, check=False)
    return next(iter(done.stdout.split()), "") if done.returncode == 0 else ""


def container_restarts(name: str) -> int:
    done = _podman("inspect", "--format", "{{.RestartCount}}", name, check=False)
    return int(done.stdout.strip() or 0) if done.returncode == 0 else 0


def pods_labelled(label: str) -> list[str]:
    """Names of the pods carrying ``label`` (``key=value``)."""
    return _podman("pod", "ps", "--filter", f"label={label}", "--format", "{{.Name}}", check=False).stdout.split()
