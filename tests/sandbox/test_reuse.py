"""Reusing a finished sandbox result: only for byte-identical inputs, image and limits, never a failure or a
kept-files run, once per concurrent burst, and always marked as reused."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from bot.sandbox.reuse import ReusingRunner, inputs_digest
from bot.sandbox.runner import Mount, SandboxResult, SandboxSpec


def ok(n: int) -> SandboxResult:
    return replace(SandboxResult.failed("", 1.0), error=None, exit_code=0, result={"run": n})


@dataclass
class Engine:
    """A backend that counts runs; each answers with its own number (so a reused answer is recognisable)."""

    identity: str | None = "image-1"
    fail: bool = False
    delay: float = 0.0
    runs: list[SandboxSpec] = field(default_factory=list)

    async def image_identity(self, image: str) -> str | None:
        if self.identity == "unreachable":
            raise ConnectionError("registry unreachable")
        return None if self.identity is None else f"{image}@{self.identity}"

    async def run(self, spec: SandboxSpec) -> SandboxResult:
        self.runs.append(spec)
        await asyncio.sleep(self.delay)
        return SandboxResult.failed("exit 1", 1.0) if self.fail else ok(len(self.runs))


def tree(root: Path, model: bytes = b"model-bytes") -> Path:
    (root / "models").mkdir(parents=True)
    (root / "models" / "m.skops").write_bytes(model)
    (root / "data.csv").write_text("a,label\n1,0\n")
    os.symlink("data.csv", root / "link.csv")
    return root


def spec_for(repo: Path, config: Path, **overrides: object) -> SandboxSpec:
    spec = SandboxSpec(
        image="runner:1",
        argv=("python", "-m", "pipelines.review", "--no-optimize"),
        inputs=(Mount(repo, "/inputs/repo"), Mount(config, "/inputs/spec.json")),
    )
    return replace(spec, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def base(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "spec-base.json"
    config.write_text('{"models": ["churn"]}')
    return tree(tmp_path / "base"), config


async def test_an_identical_run_is_answered_from_the_first_and_says_so(base: tuple[Path, Path], tmp_path: Path) -> None:
    engine = Engine()
    runner = ReusingRunner(engine)
    first = await runner.run(spec_for(*base))
    # Another review's export of the same base: other paths on the host, the same bytes.
    other = tree(tmp_path / "again")
    (tmp_path / "spec-again.json").write_text(base[1].read_text())
    second = await runner.run(spec_for(other, tmp_path / "spec-again.json"))
    assert len(engine.runs) == 1 and first.reused is None
    assert second.result == first.result == {"run": 1}
    assert second.reused is not None and second.reused.key == inputs_digest(spec_for(*base), "runner:1@image-1")
    assert runner.reused == 1


@pytest.mark.parametrize(
    "change",
    [
        "model byte",
        "config",
        "link target",
        "file mode",
        "image",
        "limits",
        "argv",
        "env",
    ],
)
async def test_anything_the_sandbox_would_see_differently_runs_again(
    base: tuple[Path, Path], tmp_path: Path, change: str
) -> None:
    engine = Engine()
    runner = ReusingRunner(engine)
    await runner.run(spec_for(*base))
    repo, config = base
    spec = spec_for(repo, config)
    if change == "model byte":
        (repo / "models" / "m.skops").write_bytes(b"model-bytez")
    elif change == "config":
        config.write_text('{"models": ["churn"], "x": 1}')
    elif change == "link target":
        (repo / "link.csv").unlink()
        os.symlink("models/m.skops", repo / "link.csv")
    elif change == "file mode":
        (repo / "data.csv").chmod(0o600)
    elif change == "image":
        engine.identity = "image-2"  # the same tag, rebuilt: another digest
    elif change == "limits":
        spec = replace(spec, memory_bytes=spec.memory_bytes // 2)
    elif change == "argv":
        spec = replace(spec, argv=("python", "-m", "pipelines.review"))
    elif change == "env":
        spec = replace(spec, env={"OMP_NUM_THREADS": "2"})
    again = await runner.run(spec)
    assert len(engine.runs) == 2 and again.reused is None and again.result == {"run": 2}


async def test_failures_kept_files_and_unnamed_images_are_never_reused(base: tuple[Path, Path], tmp_path: Path) -> None:
    failing = Engine(fail=True)
    runner = ReusingRunner(failing)
    assert not (await runner.run(spec_for(*base))).ok
    assert not (await runner.run(spec_for(*base))).ok
    assert len(failing.runs) == 2  # a failure may be the cluster's, not the inputs': run again

    engine = Engine()
    runner = ReusingRunner(engine)
    kept = spec_for(*base, keep="variants", keep_to=tmp_path / "kept")
    await runner.run(kept)
    await runner.run(kept)
    assert len(engine.runs) == 2  # kept variants must land in each review's own directory

    unreachable = Engine(identity="unreachable")  # resolving the image fails: the run still happens
    runner = ReusingRunner(unreachable)
    assert (await runner.run(spec_for(*base))).ok
    assert len(unreachable.runs) == 1

    engine = Engine()
    runner = ReusingRunner(engine)
    probe = SandboxSpec(image="runner:1", argv=("python", "-c", "pass"))  # the doctor's: no inputs
    await runner.run(probe)
    await runner.run(probe)
    assert len(engine.runs) == 2

    unnamed = Engine(identity=None)  # e.g. a runtime bind-mounted from the host
    runner = ReusingRunner(unnamed)
    await runner.run(spec_for(*base))
    await runner.run(spec_for(*base))
    assert len(unnamed.runs) == 2


async def test_concurrent_identical_runs_share_one_and_a_cancelled_first_does_not_fail_the_rest(
    base: tuple[Path, Path],
) -> None:
    engine = Engine(delay=0.2)
    runner = ReusingRunner(engine)
    results = await asyncio.gather(*(runner.run(spec_for(*base)) for _ in range(5)))
    assert len(engine.runs) == 1
    assert [r.result for r in results] == [{"run": 1}] * 5
    assert sum(r.reused is not None for r in results) == 4

    engine = Engine(delay=0.2)
    runner = ReusingRunner(engine)
    first = asyncio.create_task(runner.run(spec_for(*base)))
    await asyncio.sleep(0.05)
    waiters = [asyncio.create_task(runner.run(spec_for(*base))) for _ in range(2)]
    await asyncio.sleep(0.05)
    first.cancel()  # a superseded review
    results = await asyncio.gather(*waiters)
    assert all(r.ok and r.reused is None for r in results)  # each ran its own
    assert len(engine.runs) == 3


async def test_a_result_is_forgotten_after_its_time(base: tuple[Path, Path]) -> None:
    now = [0.0]
    engine = Engine()
    runner = ReusingRunner(engine, ttl_s=60, clock=lambda: now[0])
    await runner.run(spec_for(*base))
    now[0] = 30.0
    assert (await runner.run(spec_for(*base))).reused is not None
    now[0] = 61.0
    assert (await runner.run(spec_for(*base))).reused is None
    assert len(engine.runs) == 2


async def test_the_backends_other_operations_stay_reachable_through_it() -> None:
    class Kube(Engine):
        async def delete_orphans(self) -> list[str]:
            return ["modelship-sbx-left"]

    runner = ReusingRunner(Kube())
    assert await runner.delete_orphans() == ["modelship-sbx-left"]  # type: ignore[attr-defined]  # bot.app's sweep
    assert getattr(ReusingRunner(Engine()), "delete_orphans", None) is None  # the Docker backend has none
