"""Is a deploy live? The pure core of live tracking: what Prometheus shows in, the next phase out.

A ``deployed`` row is ``committed`` when its values reach the deploy repository. Live means every ready
replica of the model in the environment serves the new file: the model server exports
``modelship_model_info{sha256=…} 1`` once it has verified and loaded the file, and the server-side
template ``config/promql/live/serving.yml`` counts ready replicas by sha256. In between the deploy is
``rolling_out`` (some replica serves the new file, or one serves a file that is neither the new nor the
old one). Not live by ``environments.<env>.progress_deadline`` → ``failed``, with what the bot saw.

Values in, values out: bot.deploy.live asks Prometheus, persists and tells people.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.store.deployments import COMMITTED, LIVE, NOT_LIVE, ROLLING_OUT


@dataclass(frozen=True)
class Serving:
    """Ready replicas by the sha256 of the file each serves (one Prometheus answer), or why the bot cannot
    tell (``error``: Prometheus unreachable or the query refused)."""

    replicas: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def failed(cls, error: str) -> Serving:
        return cls({}, error)


@dataclass(frozen=True)
class Rollout:
    """The facts of one tracked deployment."""

    phase: str  # committed | rolling_out
    sha256: str  # the file the environment must serve
    previous_sha256: str | None  # the file it served before (None: a first deploy)
    committed_at: float  # Unix seconds
    deadline: float  # environments.<env>.progress_deadline, seconds


@dataclass(frozen=True)
class Step:
    """The phase after a look, and what the bot saw (shown in the dossier; the reason of a failure)."""

    phase: str
    detail: str
    # False when the bot could not see (Prometheus failed): a failure then alerts, it never rolls back.
    certain: bool = True
    # Why the rollout is stuck, from the Kubernetes API (bot.deploy.kube_rollout), or "": ``cause`` in words
    # (the detail leads with it), ``cause_key`` what identifies it across rounds — the kubelet's reasons
    # without the pod names and back-off timers that change while the cause stays the same.
    cause: str = ""
    cause_key: str = ""


def cause_news(step: Step, told: str | None) -> bool:
    """Whether ``step`` carries a stuck cause that GitHub and the dossier have not heard yet: once per distinct
    cause, and only while the deploy is still under way (``live`` and ``failed`` say their own). A cause that
    clears does not reset what was told: a crash-looping container runs for a moment between its back-offs,
    and that must not tell the same crash loop again at every restart."""
    return step.phase in (COMMITTED, ROLLING_OUT) and bool(step.cause_key) and step.cause_key != (told or "")


def short(sha256: str | None) -> str:
    return (sha256 or "")[:12]


def duration(seconds: float) -> str:
    """10m, 1m 8s, 45s, 1h 2m: how people say a rollout's time."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    parts = [f"{h}h"] if h else []
    if m:
        parts.append(f"{m}m")
    if sec and not h:
        parts.append(f"{sec}s")
    return " ".join(parts) or "0s"


def _replicas(n: int) -> str:
    return f"{n} replica{'s' if n != 1 else ''}"


def describe(rollout: Rollout, serving: Serving) -> str:
    """What the replicas serve, in words: 'no replica is up', '1 of 2 ready replicas serve the new file …'."""
    if serving.error is not None:
        return f"the bot cannot tell: {serving.error}"
    counts = {sha: n for sha, n in serving.replicas.items() if n > 0}
    total = sum(counts.values())
    if total == 0:
        return "no replica is up (no ready replica exports modelship_model_info for this model and environment)"
    new = counts.get(rollout.sha256, 0)
    old = counts.get(rollout.previous_sha256 or "", 0) if rollout.previous_sha256 != rollout.sha256 else 0
    parts = [f"{new} of {total} ready replicas serve the new file {short(rollout.sha256)}"]
    if old:
        parts.append(
            f"{_replicas(old)} still {'serve' if old != 1 else 'serves'} the old file {short(rollout.previous_sha256)}"
        )
    for sha, n in sorted(counts.items()):
        if sha not in (rollout.sha256, rollout.previous_sha256):
            parts.append(
                f"{_replicas(n)} {'serve' if n != 1 else 'serves'} {short(sha) or 'no sha256'}, "
                "which is neither the new nor the old file"
            )
    return "; ".join(parts)


def judge(rollout: Rollout, serving: Serving, now: float) -> Step:
    """The next phase of a tracked deployment after one look at the replicas."""
    counts = {sha: n for sha, n in serving.replicas.items() if n > 0}
    new, total = counts.get(rollout.sha256, 0), sum(counts.values())
    seen = describe(rollout, serving)
    if serving.error is None and new > 0 and new == total:
        return Step(LIVE, seen)
    if now - rollout.committed_at >= rollout.deadline:
        return Step(NOT_LIVE, f"not live after {duration(rollout.deadline)}: {seen}", certain=serving.error is None)
    moving = new > 0 or any(sha not in (rollout.sha256, rollout.previous_sha256) for sha in counts)
    phase = ROLLING_OUT if rollout.phase == ROLLING_OUT or (serving.error is None and moving) else COMMITTED
    return Step(phase, seen)
