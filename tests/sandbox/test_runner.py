"""A spec refuses what can never run safely before any container exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.sandbox.runner import Mount, SandboxResult, SandboxSpec


def test_a_spec_keeps_sane_defaults():
    spec = SandboxSpec(image="img", argv=("python", "-m", "pipelines.evaluate"))
    assert spec.cpus == 1.0 and spec.pids_limit > 0 and spec.timeout_s == 600.0
    assert spec.memory_bytes == 2 * 1024**3


@pytest.mark.parametrize("name", ["GITHUB_TOKEN", "webhook_secret", "DB_PASSWORD", "AWS_API_KEY"])
def test_secrets_never_enter_the_sandbox_env(name: str):
    with pytest.raises(ValueError, match=f"'{name}' looks like a secret"):
        SandboxSpec(image="img", argv=("true",), env={name: "x"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"argv": ()}, "argv is empty"),
        ({"timeout_s": 0}, "timeout_s must be positive"),
        ({"memory_bytes": -1}, "memory_bytes must be positive"),
        ({"inputs": (Mount(Path("/data"), "data"),)}, "'data' must be an absolute path"),
    ],
)
def test_impossible_specs_are_rejected_with_the_field_named(changes: dict[str, object], message: str):
    with pytest.raises(ValueError, match=message):
        SandboxSpec(**{"image": "img", "argv": ("true",), **changes})  # type: ignore[arg-type]


def test_a_result_is_ok_only_without_an_error():
    base = dict(
        exit_code=0,
        timed_out=False,
        oom_killed=False,
        stdout=b"",
        stderr=b"",
        stdout_truncated=False,
        stderr_truncated=False,
        result={},
        duration_s=1.0,
        container_start_s=0.3,
    )
    assert SandboxResult(error=None, **base).ok  # type: ignore[arg-type]
    assert not SandboxResult(error="timed out", **base).ok  # type: ignore[arg-type]
