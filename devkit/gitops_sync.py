"""What plays Argo CD / Flux on this machine: a deploy commit becomes running pods.

``GitOpsSync`` follows a deploy repository over git HTTP (the token travels in a header from the
environment, as bot/github/git.py does it, never in argv or a URL), finds every environment values
file (``deploy.path_template``, ``environments/{env}/{model}/values.yaml`` by default), renders
charts/model-server with it through Helm's SDK (release = the model, namespace = the environment,
as an Argo CD application per environment and model would) and runs what Helm rendered with
``podman kube play``. A values file that was deleted takes its pods with it; one Helm refuses leaves
the running pods alone and is reported (``errors``), as a failed Argo CD sync does.

Each Deployment is run the way its controller and a kubelet would run it, because podman 4.3 cannot
(devkit/kube.py lists its limits): ``replicas`` Pods from the pod template, rolled one step at a time
within the strategy's maxSurge / maxUnavailable when the template changes (old pods are removed only
when enough new ones are ready), readiness probed by the sync itself (the template's readinessProbe,
httpGet on the pod IP). ``pause``/``resume`` hold a rollout between steps, like ``kubectl rollout
pause``: that is how a test keeps one replica on the old version while another serves the new one.
Pods listen on their own pod IPs, so replicas, environments and concurrent syncs never collide on
a port.

Prometheus discovers the pods as the chart's ``prometheus.io/*`` annotations ask a cluster's
Prometheus to: ``pod IP:prometheus.io/port``, path ``prometheus.io/path``, labels ``namespace``,
``pod``, ``env`` and ``model`` (devkit.processes.Prometheus.set_pod_targets, file_sd).

What was applied is recorded per environment and model (``applied``): the deploy commit, when the
sync saw it, when it played the first pod of it and when the rollout finished. Tests and benchmarks
measure with it.

    sync = GitOpsSync(clone_url, workdir, token=lambda: hub.issue_token(installation_id).value,
                      prometheus=prometheus)
    sync.start()                 # a thread: poll every second (``trigger()`` polls now)
    sync.wait_rolled_out("staging", "churn", sha256=..., timeout=120)
    sync.pods("staging", "churn")   # [Pod(name, ip, port, ready, sha256, ...)]
    sync.stop(); sync.down()     # down removes every pod it played

Cost when nothing changes (measured here): about 3 % of a core for the 1 s git polls (devhub's
``git http-backend`` included), plus about 5 % while pods run (one ``podman ps`` and a readiness probe
per pod each second). Every podman command takes podman's storage lock, so on a machine where other
work builds images or plays pods, a round can wait seconds for it (``events`` logs slow rounds).

Everything here blocks (git, podman, HTTP probes); async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.deploy.helm import HelmRefusal, render_chart_sync
from bot.github.git import GitCredentials, credentials
from devkit import kube
from devkit.processes import Prometheus

log = logging.getLogger(__name__)

CHART = Path(__file__).resolve().parents[1] / "charts" / "model-server"
PATH_TEMPLATE = "environments/{env}/{model}/values.yaml"
SYNC_LABEL = "modelship.dev/gitops-sync"  # value: the sync's instance; every pod it plays carries it
TICK = 0.25  # seconds between rollout steps while a rollout is in progress
SLOW_ROUND = 2.0  # a round longer than this is logged in ``events`` with where its time went


class SyncError(Exception):
    """The deploy repository could not be read (the message names the command and quotes git)."""


@dataclass(frozen=True)
class Applied:
    """What the sync applied for one model in one environment."""

    env: str
    model: str
    commit: str  # the deploy repository commit the values came from
    path: str  # the values file
    digest: str  # sha256 of what Helm rendered: a new digest means a new apply
    sha256: str  # model.sha256 of the values ("" once the values file is gone)
    seen_at: float  # time.time() when the sync first read this commit's values
    applied_at: float | None = None  # when the first pod of it was played (None: nothing to play)
    rolled_out_at: float | None = None  # when every replica was ready on it and no old pod was left
    deleted: bool = False


@dataclass(frozen=True)
class Pod:
    name: str  # the pod (podman's pod name); its container is <name>-<container>
    env: str
    model: str
    deployment: str
    template_hash: str
    sha256: str  # model.sha256 the pod was started with
    revision: str
    ip: str
    port: int
    ready: bool
    running: bool
    created_at: float
    ready_at: float | None

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass
class _Workload:
    """One Deployment of one release, as the last applied render wants it."""

    env: str
    model: str
    name: str
    template: dict[str, Any]
    template_hash: str
    replicas: int
    max_surge: int
    max_unavailable: int
    port: int  # the server's port (prometheus.io/port, else the first containerPort)
    ready_path: str | None
    ready_port: int
    metrics_path: str
    scrape: bool
    sha256: str
    revision: str


@dataclass
class _PodState:
    pod: Pod
    container: str
    path: Path
    terminating: bool = False
    labels: dict[str, str] = field(default_factory=dict)


def _fraction(value: Any, replicas: int, *, up: bool) -> int:
    """A maxSurge / maxUnavailable value as Kubernetes reads it: an int, or a percentage of replicas
    (surge rounds up, unavailable down)."""
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * replicas / 100
        return int(-(-share // 1)) if up else int(share // 1)
    return int(value)


def _named_port(container: Mapping[str, Any], port: Any) -> int:
    if isinstance(port, int):
        return port
    for entry in container.get("ports") or []:
        if entry.get("name") == port:
            return int(entry["containerPort"])
    if str(port).isdigit():
        return int(port)
    raise ValueError(f"container {container.get('name')!r}: no port named {port!r}")


def _workload(env: str, model: str, deployment: Mapping[str, Any]) -> _Workload:
    spec = deployment.get("spec") or {}
    template = dict(spec.get("template") or {})
    container = (template.get("spec") or {}).get("containers", [{}])[0]
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    recreate = strategy.get("type") == "Recreate"
    surge = 0 if recreate else _fraction(rolling.get("maxSurge", "25%"), replicas, up=True)
    unavailable = replicas if recreate else _fraction(rolling.get("maxUnavailable", "25%"), replicas, up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # what Kubernetes' validation insists on
    ports = [int(p["containerPort"]) for p in container.get("ports") or []]
    port = int(annotations.get("prometheus.io/port") or (ports[0] if ports else 80))
    probe = (container.get("readinessProbe") or {}).get("httpGet")
    env_vars = {e.get("name"): e.get("value") for e in container.get("env") or []}
    pinned = (deployment.get("metadata") or {}).get("annotations") or {}
    return _Workload(
        env=env,
        model=model,
        name=str(deployment["metadata"]["name"]),
        template=template,
        template_hash=hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10],
        replicas=replicas,
        max_surge=surge,
        max_unavailable=unavailable,
        port=port,
        ready_path=probe.get("path", "/") if probe else None,
        ready_port=_named_port(container, probe["port"]) if probe else port,
        metrics_path=str(annotations.get("prometheus.io/path") or "/metrics"),
        scrape=str(annotations.get("prometheus.io/scrape", "false")).lower() == "true",
        sha256=str(env_vars.get("MODELSHIP_MODEL_SHA256") or pinned.get("modelship.dev/sha256") or ""),
        revision=str(env_vars.get("MODELSHIP_MODEL_REVISION") or pinned.get("modelship.dev/revision") or ""),
    )


def _values_pattern(template: str) -> re.Pattern[str]:
    escaped = re.escape(template).replace(r"\{env\}", "(?P<env>[^/]+)").replace(r"\{model\}", "(?P<model>[^/]+)")
    return re.compile(f"^{escaped}$")


class GitOpsSync:
    """Follows ``clone_url``'s ``branch`` and keeps the pods its values files render running.

    ``token``: returns an installation token for the deploy repository (None: anonymous); called again
    when git says the one in use was refused. ``name``: the instance, in every pod name and label
    (default: random), so concurrent syncs never touch each other's pods.
    """

    def __init__(
        self,
        clone_url: str,
        workdir: Path,
        *,
        token: Callable[[], str | None] | None = None,
        chart: Path = CHART,
        path_template: str = PATH_TEMPLATE,
        branch: str = "main",
        prometheus: Prometheus | None = None,
        interval: float = 1.0,
        name: str | None = None,
        tls_verify: bool = False,
    ) -> None:
        self.clone_url = clone_url
        self.workdir = workdir
        self.chart = chart
        self.branch = branch
        self.prometheus = prometheus
        self.interval = interval
        self.name = name or f"gs{secrets.token_hex(3)}"
        self.tls_verify = tls_verify
        self._token_source = token
        self._token: str | None = None
        self._pattern = _values_pattern(path_template)
        self._git_dir = workdir / "deploy.git"
        self._lock = threading.RLock()
        self._applied: dict[tuple[str, str], Applied] = {}
        self._workloads: dict[tuple[str, str], list[_Workload]] = {}
        self._pods: dict[str, _PodState] = {}
        self._paused: dict[tuple[str, str], int] = {}  # (env, model) -> how many new pods it may have
        self._serial = 0
        self._commit: str | None = None
        self._last_fetch = 0.0
        self.errors: dict[tuple[str, str], str] = {}  # (env, model) -> why its values were not applied
        # What the sync did, in order: (time.time(), env, model, what) — applied, pod played/ready/removed.
        self.events: list[tuple[float, str, str, str]] = []
        self._removals: list[threading.Thread] = []
        self.last_error: str | None = None  # the loop's last failure (git unreachable, podman, ...)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Run ``sync_once`` in a thread: every ``interval`` seconds, at once on ``trigger()``, and every
        quarter second while a rollout is in progress."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"gitops-sync-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def trigger(self) -> None:
        """Fetch the deploy repository now (as an Argo CD webhook or ``flux reconcile`` would)."""
        self._last_fetch = 0.0
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.sync_once()
                self.last_error = None
            except Exception as exc:  # keep following: the next round may succeed (git back, podman back)
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("gitops sync %s: %s", self.name, self.last_error)
                busy = False
            self._wake.wait(TICK if busy else self.interval)
            self._wake.clear()

    def sync_once(self, *, fetch: bool | None = None) -> bool:
        """One round: fetch (when ``interval`` has passed, or ``fetch=True``), apply what changed, take
        the next step of every rollout, publish the scrape targets. Returns whether a rollout is still
        in progress."""
        now = time.monotonic()
        phases: dict[str, float] = {}
        if fetch or (fetch is None and now - self._last_fetch >= self.interval):
            self._last_fetch = now
            commit = self._fetch()
            phases["fetch"] = time.monotonic()
            if commit != self._commit:
                self._apply(commit)
                phases["render"] = time.monotonic()
        with self._lock:
            busy = self._reconcile()
            self._publish_targets()
        phases["reconcile"] = time.monotonic()
        if phases["reconcile"] - now > SLOW_ROUND:  # say where a slow round went (git, Helm, podman)
            took, last = [], now
            for phase, at in phases.items():
                took.append(f"{phase} {at - last:.1f}s")
                last = at
            self._event("", "", f"slow round: {', '.join(took)}")
        return busy

    # -- git --------------------------------------------------------------------------------------

    def _git(self, *args: str, creds: GitCredentials | None = None, check: bool = True) -> str:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.workdir), **(creds.env if creds else {})}
        done = subprocess.run(
            ["git", "--git-dir", str(self._git_dir), *args], capture_output=True, text=True, env=env, timeout=60
        )
        if check and done.returncode != 0:
            message = creds.redact(done.stderr) if creds else done.stderr
            raise SyncError(f"git {args[0]} failed: {message.strip()[-1000:]}")
        return done.stdout

    def _fetch(self) -> str:
        if not self._git_dir.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "--quiet", "--bare", str(self._git_dir)], check=True, capture_output=True)
        refspec = f"+refs/heads/{self.branch}:refs/remotes/deploy/{self.branch}"
        for attempt in range(2):
            if self._token is None and self._token_source is not None:
                self._token = self._token_source()
            creds = credentials(self._token)
            try:
                self._git("fetch", "--quiet", "--no-tags", self.clone_url, refspec, creds=creds)
                break
            except SyncError as exc:
                auth = any(w in str(exc).lower() for w in ("401", "403", "authentication", "could not read"))
                if not auth or attempt:
                    raise
                self._token = None  # refused: mint another one, once
        return self._git("rev-parse", f"refs/remotes/deploy/{self.branch}").strip()

    def _values_files(self, commit: str) -> dict[tuple[str, str], str]:
        found = {}
        for path in self._git("ls-tree", "-r", "--name-only", commit).splitlines():
            if match := self._pattern.match(path):
                found[(match["env"], match["model"])] = path
        return found

    # -- apply ------------------------------------------------------------------------------------

    def _apply(self, commit: str) -> None:
        seen = time.time()
        files = self._values_files(commit)
        for (env, model), path in sorted(files.items()):
            text = self._git("cat-file", "blob", f"{commit}:{path}")
            rendered = render_chart_sync(self.chart, text, release=model, namespace=env)
            if isinstance(rendered, HelmRefusal):
                with self._lock:
                    self.errors[(env, model)] = f"{path} at {commit[:12]}: Helm refused: {rendered.message}"
                continue
            documents = rendered.documents()
            digest = hashlib.sha256(json.dumps(documents, sort_keys=True).encode()).hexdigest()
            deployments = [d for d in documents if d.get("kind") == "Deployment"]
            workloads = [_workload(env, model, d) for d in deployments]
            with self._lock:
                self.errors.pop((env, model), None)
                before = self._applied.get((env, model))
                if before is not None and before.digest == digest and not before.deleted:
                    self._applied[(env, model)] = replace(before, commit=commit)  # same render: nothing to do
                    continue
                sha = workloads[0].sha256 if workloads else ""
                self._applied[(env, model)] = Applied(env, model, commit, path, digest, sha, seen)
                self._workloads[(env, model)] = workloads
                self._event(env, model, f"applied {path} at {commit[:12]} (sha256 {sha[:12] or '-'})")
        with self._lock:
            for key, applied in list(self._applied.items()):
                if key not in files and not applied.deleted:
                    self._applied[key] = Applied(*key, commit, applied.path, "", "", seen, deleted=True)
                    self._event(*key, f"{applied.path} deleted at {commit[:12]}")
                    self._workloads.pop(key, None)
                    self.errors.pop(key, None)
            self._commit = commit

    # -- the Deployment controller and the kubelet's probes ---------------------------------------

    def _reconcile(self) -> bool:
        self._observe()
        busy = False
        wanted = {(w.env, w.model, w.name): w for ws in self._workloads.values() for w in ws}
        for state in list(self._pods.values()):  # pods of Deployments no longer rendered (values deleted)
            if (state.pod.env, state.pod.model, state.pod.deployment) not in wanted:
                self._delete(state)
        for (env, model), workloads in self._workloads.items():
            for workload in workloads:
                if self._step(workload, limit=self._paused.get((env, model), workload.replicas)):
                    busy = True
            applied = self._applied.get((env, model))
            done = not busy and all(self._rolled_out(w) for w in workloads)
            if applied is not None and applied.rolled_out_at is None and done:
                self._applied[(env, model)] = replace(applied, rolled_out_at=time.time())
        for key, applied in self._applied.items():
            gone = not any((p.pod.env, p.pod.model) == key for p in self._pods.values())
            if applied.deleted and applied.rolled_out_at is None and gone:
                self._applied[key] = replace(applied, rolled_out_at=time.time())
        return busy or any(a.rolled_out_at is None and not a.deleted for a in self._applied.values())

    def _pods_of(self, workload: _Workload) -> list[_PodState]:
        return [
            s
            for s in self._pods.values()
            if (s.pod.env, s.pod.model, s.pod.deployment) == (workload.env, workload.model, workload.name)
        ]

    def _rolled_out(self, workload: _Workload) -> bool:
        pods = self._pods_of(workload)
        new = [s for s in pods if s.pod.template_hash == workload.template_hash]
        return len(pods) == len(new) == workload.replicas and all(s.pod.ready for s in new)

    def _step(self, workload: _Workload, *, limit: int) -> bool:
        """One step of the rolling update (maxSurge up, then old pods down while enough are ready), with
        at most ``limit`` pods of the new template (a paused rollout); returns whether more steps are to come."""
        pods = self._pods_of(workload)
        new = [s for s in pods if s.pod.template_hash == workload.template_hash]
        old = [s for s in pods if s.pod.template_hash != workload.template_hash]
        if limit <= 0:
            return False
        surplus = max(0, len(new) - workload.replicas)
        for extra in sorted(new, key=lambda s: (s.pod.ready, -s.pod.created_at))[:surplus]:
            self._delete(extra)
            new.remove(extra)
        if not old and len(new) == workload.replicas:
            return not all(s.pod.ready for s in new)
        ready = sum(s.pod.ready for s in pods)
        # Old pods go first when they are not ready (they serve nobody), then while enough stay ready.
        for victim in sorted(old, key=lambda s: (s.pod.ready, s.pod.created_at)):
            if not victim.pod.ready or ready - 1 >= workload.replicas - workload.max_unavailable:
                ready -= victim.pod.ready
                self._delete(victim)
                old.remove(victim)
        while len(new) < min(limit, workload.replicas) and len(new) + len(old) < workload.replicas + workload.max_surge:
            new.append(self._create(workload))
        return limit >= workload.replicas or not all(s.pod.ready for s in new)

    def _create(self, workload: _Workload) -> _PodState:
        self._serial += 1
        name = f"{self.name}-{workload.env}-{workload.name}-{workload.template_hash}-{self._serial}"
        labels = {
            SYNC_LABEL: self.name,
            "pod-template-hash": workload.template_hash,
            "modelship.dev/sync-env": workload.env,
            "modelship.dev/sync-release": workload.model,
        }
        manifest = kube.podman_pod(workload.template, name=name, labels=labels)
        container = manifest["spec"]["containers"][0]["name"]
        path = self.workdir / "pods" / f"{name}.yaml"
        created = time.time()
        pod = Pod(
            name,
            workload.env,
            workload.model,
            workload.name,
            workload.template_hash,
            workload.sha256,
            workload.revision,
            "",
            workload.port,
            False,
            False,
            created,
            None,
        )
        state = _PodState(pod, f"{name}-{container}", path, labels=labels)
        self._pods[name] = state
        applied = self._applied.get((workload.env, workload.model))
        if applied is not None and applied.applied_at is None:
            self._applied[(workload.env, workload.model)] = replace(applied, applied_at=created)
        try:
            kube.play_pod(manifest, path, tls_verify=self.tls_verify)
            self._event(workload.env, workload.model, f"played {name}")
        except RuntimeError as exc:  # e.g. the image cannot be pulled: the pod stays, not ready, as in a cluster
            self.errors[(workload.env, workload.model)] = f"{name}: {exc}"
            self._event(workload.env, workload.model, f"{name} failed to start: {exc}")
        return state

    def _delete(self, state: _PodState) -> None:
        """Forget the pod at once and remove it in the background: podman takes seconds to stop a pod,
        and the next step of a rollout (probing the pod that replaces it) must not wait for that."""
        self._pods.pop(state.pod.name, None)
        self._event(state.pod.env, state.pod.model, f"removing {state.pod.name}")
        removal = threading.Thread(target=kube.remove_pod, args=(state.pod.name,), daemon=True)
        removal.start()
        self._removals = [t for t in self._removals if t.is_alive()] + [removal]

    def _event(self, env: str, model: str, what: str) -> None:
        self.events.append((time.time(), env, model, what))

    def _observe(self) -> None:
        """The pods' containers as podman sees them, and readiness as the template's probe says."""
        if not self._pods:
            return
        states = {c.name: c for c in kube.container_states(f"{SYNC_LABEL}={self.name}")}
        workloads = {(w.env, w.model, w.name, w.template_hash): w for ws in self._workloads.values() for w in ws}
        for state in list(self._pods.values()):
            pod = state.pod
            container = states.get(state.container)
            running = bool(container and container.running)
            ip = pod.ip or (kube.container_ip(state.container) if running else "")
            workload = workloads.get((pod.env, pod.model, pod.deployment, pod.template_hash))
            ready = running and bool(ip) and self._probe(ip, workload)
            ready_at = pod.ready_at or (time.time() if ready else None)
            if ready != pod.ready:
                self._event(pod.env, pod.model, f"{pod.name} {'ready' if ready else 'not ready'} at {ip}")
            state.pod = replace(pod, ip=ip, running=running, ready=ready, ready_at=ready_at)

    @staticmethod
    def _probe(ip: str, workload: _Workload | None) -> bool:
        if workload is None:  # an old template: it was ready when it was last probed through its own
            return True
        if workload.ready_path is None:
            return True  # no readinessProbe: ready once running, as in Kubernetes
        try:
            url = f"http://{ip}:{workload.ready_port}{workload.ready_path}"
            with urllib.request.urlopen(url, timeout=1) as answer:
                return bool(200 <= answer.status < 400)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _publish_targets(self) -> None:
        if self.prometheus is None:
            return
        scraped = {(w.env, w.model, w.name): w for ws in self._workloads.values() for w in ws}
        targets = []
        for state in sorted(self._pods.values(), key=lambda s: s.pod.name):
            pod = state.pod
            workload = scraped.get((pod.env, pod.model, pod.deployment))
            if not pod.running or not pod.ip or (workload is not None and not workload.scrape):
                continue
            path = workload.metrics_path if workload else "/metrics"
            labels = {"namespace": pod.env, "pod": pod.name, "env": pod.env, "model": pod.model}
            targets.append((pod.address, {**labels, "__metrics_path__": path}))
        self.prometheus.set_pod_targets(self.name, targets)

    # -- what tests and benchmarks read -----------------------------------------------------------

    def applied(self, env: str, model: str) -> Applied | None:
        with self._lock:
            return self._applied.get((env, model))

    def pods(self, env: str | None = None, model: str | None = None) -> list[Pod]:
        with self._lock:
            return sorted(
                (
                    s.pod
                    for s in self._pods.values()
                    if (env is None or s.pod.env == env) and (model is None or s.pod.model == model)
                ),
                key=lambda p: p.created_at,
            )

    def logs(self, pod: Pod, tail: int = 50) -> str:
        with self._lock:
            state = self._pods.get(pod.name)
        container = state.container if state else f"{pod.name}-model-server"
        return kube.KubePlay(self.workdir).logs(container, tail)

    def pause(self, env: str, model: str, *, new_pods: int = 0) -> None:
        """Hold the rollout of ``model`` in ``env`` (``kubectl rollout pause``): no pod is created or removed
        any more. With ``new_pods=n`` the rollout goes on until n pods run the new template (and old ones
        go as the strategy allows), then holds: with 2 replicas and ``new_pods=1``, one replica serves the
        new version and one still the old."""
        with self._lock:
            self._paused[(env, model)] = new_pods

    def resume(self, env: str, model: str) -> None:
        with self._lock:
            self._paused.pop((env, model), None)
        self._wake.set()

    def wait_rolled_out(
        self, env: str, model: str, *, sha256: str | None = None, commit: str | None = None, timeout: float = 180
    ) -> Applied:
        """Until the values of ``env``/``model`` (at ``commit``, or serving ``sha256``) are rolled out:
        every replica ready on them, no old pod left. A timeout names what the pods are doing."""
        deadline = time.monotonic() + timeout
        while True:
            applied = self.applied(env, model)
            if (
                applied is not None
                and applied.rolled_out_at is not None
                and (sha256 is None or applied.sha256 == sha256)
                and (commit is None or applied.commit == commit)
            ):
                return applied
            if time.monotonic() > deadline:
                pods = ", ".join(f"{p.name} ready={p.ready} running={p.running}" for p in self.pods(env, model))
                error = self.errors.get((env, model)) or self.last_error or ""
                raise TimeoutError(
                    f"{env}/{model} not rolled out after {timeout:g}s: applied {applied}; pods: {pods or 'none'}"
                    + (f"; {error}" if error else "")
                )
            if self._thread is None:
                self.sync_once()
            time.sleep(0.1)

    def down(self) -> None:
        """Remove every pod this sync played and its scrape targets."""
        with self._lock:
            for state in list(self._pods.values()):
                self._delete(state)
            self._workloads.clear()
            if self.prometheus is not None:
                self.prometheus.set_pod_targets(self.name, [])
        for removal in self._removals:
            removal.join(timeout=60)
        with contextlib.suppress(Exception):  # leftovers of a sync that crashed before its down()
            for name in kube.pods_labelled(f"{SYNC_LABEL}={self.name}"):
                kube.remove_pod(name)
