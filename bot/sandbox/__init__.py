"""Hardened sandbox for untrusted PR contents: a Protocol, its Docker Engine API backend, a local image."""

from bot.sandbox.runner import (
    INPUTS_DIR,
    OUTPUT_DIR,
    RESULT_FILE,
    SCRATCH_DIR,
    Mount,
    SandboxResult,
    SandboxRunner,
    SandboxSpec,
)

__all__ = [
    "INPUTS_DIR",
    "OUTPUT_DIR",
    "RESULT_FILE",
    "SCRATCH_DIR",
    "Mount",
    "SandboxResult",
    "SandboxRunner",
    "SandboxSpec",
]
