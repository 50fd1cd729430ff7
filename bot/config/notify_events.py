"""The events Modelship tells people about (bot.notify sends them), and the per-sink filters over them. Pure:
the settings check MODELSHIP_NOTIFY_*_EVENTS against these names at start-up."""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Sequence

KINDS: tuple[str, ...] = (
    "review.finished",  # a review reached its verdict (passed or failed, with the failed gates)
    "deploy.committed",  # the values are in the deploy repository
    "deploy.live",  # every ready replica serves the new file (bot.deploy live tracking)
    "deploy.failed",  # not live by the environment's progress deadline
    "rollback.opened",  # the guard (or /modelship rollback) opened a rollback PR
    "rollback.merged",  # that PR was merged: the previous version is pinned
    "guard.alert",  # the guard cannot judge a deployment (queries failing) or cannot roll it back
)


def check_filters(patterns: Sequence[str]) -> list[str]:
    """The patterns, or ValueError naming the first that matches no event (``deploy.*`` globs are fine)."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(kind, pattern) for kind in KINDS):
            raise ValueError(f"'{pattern}' matches no event; events: {', '.join(KINDS)} (globs like deploy.* work)")
    return list(patterns)


def wanted(patterns: Collection[str], kind: str) -> bool:
    """Does a sink filtered by ``patterns`` (empty: every event) want ``kind``?"""
    return not patterns or any(fnmatch.fnmatchcase(kind, p) for p in patterns)
