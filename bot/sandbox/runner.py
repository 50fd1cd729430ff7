"""What a sandboxed run takes and returns, and the narrow Protocol every backend implements.

Inside the container the layout is fixed: inputs are mounted read-only where the spec says
(usually under ``/inputs``), ``/scratch`` and ``/tmp`` are small tmpfs mounts, and ``/out`` is the
only writable directory that survives the run. The command writes ``/out/result.json``; the
runner reads it back, refusing symlinks, non-regular files and anything over the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

INPUTS_DIR = "/inputs"
SCRATCH_DIR = "/scratch"
OUTPUT_DIR = "/out"
RESULT_FILE = "result.json"

MiB = 1024 * 1024
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PRIVATE_KEY", "CREDENTIAL", "API_KEY")


@dataclass(frozen=True)
class Mount:
    """A host path made visible read-only at ``container_path``."""

    host_path: Path
    container_path: str


@dataclass(frozen=True)
class SandboxSpec:
    """One untrusted command and the limits it runs under. ``env`` must never carry a secret."""

    image: str
    argv: tuple[str, ...]
    inputs: tuple[Mount, ...] = ()
    cpus: float = 1.0
    memory_bytes: int = 2048 * MiB
    pids_limit: int = 256
    timeout_s: float = 600.0
    scratch_bytes: int = 256 * MiB
    output_cap_bytes: int = 1 * MiB  # per stream (stdout, stderr)
    result_cap_bytes: int = 64 * MiB
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    # Copy the regular files under /out/<keep> back to keep_to after a successful run (symlinks and
    # files over result_cap_bytes are skipped): how optimized model variants leave the sandbox.
    keep: str | None = None
    keep_to: Path | None = None

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("SandboxSpec.argv is empty: give the command to run")
        for name in ("cpus", "memory_bytes", "pids_limit", "timeout_s", "scratch_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SandboxSpec.{name} must be positive")
        for name in self.env:
            if any(word in name.upper() for word in _SECRET_WORDS):
                raise ValueError(f"SandboxSpec.env: {name!r} looks like a secret; the sandbox must hold none")
        for mount in self.inputs:
            if not mount.container_path.startswith("/"):
                raise ValueError(f"input mount target {mount.container_path!r} must be an absolute path")


@dataclass(frozen=True)
class Reused:
    """A result answered from an earlier identical run (bot.sandbox.reuse): its inputs' sha256 and age."""

    key: str
    age_s: float


@dataclass(frozen=True)
class SandboxResult:
    """How the run ended. ``error`` is None only when the command exited 0 and ``result`` was read."""

    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    result: dict[str, Any] | None
    error: str | None
    duration_s: float
    container_start_s: float
    reused: Reused | None = None  # not run again: the result of an identical run that finished earlier

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, error: str, duration: float) -> SandboxResult:
        """A run that ended before the command could (engine, API or read-back refusal): nothing to show."""
        return cls(
            exit_code=None,
            timed_out=False,
            oom_killed=False,
            stdout=b"",
            stderr=b"",
            stdout_truncated=False,
            stderr_truncated=False,
            result=None,
            error=error,
            duration_s=duration,
            container_start_s=0.0,
        )


class SandboxRunner(Protocol):
    async def run(self, spec: SandboxSpec) -> SandboxResult: ...
