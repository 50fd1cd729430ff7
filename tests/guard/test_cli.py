"""``modelship status`` and ``modelship rollback`` as separate processes, against the bot's database and devhub."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import Service
from devkit.devhub import RunningDevHub
from devkit.guard_world import MODELS, V1, V2, World, build_world, config, create_app, running_bot
from tests.fixtures.devhub import WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def bot(devhub: RunningDevHub, tmp_path: Path) -> AsyncIterator[tuple[Service, World, dict[str, str]]]:
    app = await create_app(devhub.hub)
    async with running_bot(devhub, tmp_path / "bot", app) as service:
        world = await build_world(devhub.hub, service.services.engine, app, guard_config=config(auto_merge=True))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "MODELSHIP_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "MODELSHIP_DATA_DIR": str(tmp_path / "bot"),
            "MODELSHIP_GITHUB_APP_ID": str(app[0]),
            "MODELSHIP_GITHUB_PRIVATE_KEY": app[1],
            "MODELSHIP_GITHUB_API_URL": devhub.api_url,
        }
        yield service, world, env


async def cli(command: str, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    code = f"from bot.guard.cli import {command}; {command}()"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_the_cli_rolls_back_through_the_same_path_and_status_shows_the_result(
    bot: tuple[Service, World, dict[str, str]],
) -> None:
    _, world, env = bot
    code, out, _ = await cli("rollback", "--repo", MODELS, "--env", "production", "--dry-run", env=env)
    assert code == 0 and f"+  revision: {V1}" in out and world.rollback_pulls() == []

    code, out, _ = await cli("rollback", "--repo", MODELS, "--env", "production", "--reason", "pager", env=env)
    assert code == 0 and "merged; the version is pinned" in out, out
    [pull] = world.rollback_pulls()
    assert pull.merged and "pager" in (pull.body or "")

    code, out, _ = await cli("status", "--repo", MODELS, env=env)
    assert code == 0 and f"| production | iris | `{V1[:7]}` | unknown | yes |" in out, out


@pytest.mark.slow
async def test_cli_errors_name_what_to_fix(bot: tuple[Service, World, dict[str, str]]) -> None:
    _, _, env = bot
    code, _, err = await cli("rollback", "--repo", MODELS, "--env", "production", "--to", "0000000", env=env)
    assert code == 1 and f"known versions: {V1[:7]}" in err and V2[:7] not in err.split("known versions:")[1]
    code, _, err = await cli(
        "rollback", "--repo", MODELS, "--env", "production", env={**env, "MODELSHIP_GITHUB_APP_ID": ""}
    )
    assert code == 2 and "MODELSHIP_GITHUB_APP_ID" in err
