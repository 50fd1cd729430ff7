"""`modelship serve` as an operator starts it: a subprocess with environment settings, against devhub."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from bot.review.service import TURNED_OFF
from devkit.devhub import RunningDevHub
from devkit.devhub.auth import generate_key
from tests.fixtures.devhub import WEBHOOK_SECRET
from tests.fixtures.prometheus import free_port

ROOT = Path(__file__).resolve().parents[1]
REPO = "acme/churn-model"
CONFIG = (
    b"version: 1\n"
    b'paths: ["models/**"]\n'
    b"models:\n"
    b"  - {name: churn, path: models/churn.skops, task: classification,"
    b" dataset: {path: data/eval.csv, target: label}}\n"
)


def serve_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    return env | {f"MODELSHIP_{k.upper()}": v for k, v in settings.items()}


async def test_serve_without_an_engine_refuses_to_start_naming_both_settings(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "serve",
        cwd=tmp_path,
        env=serve_env(tmp_path, webhook_secret="s", github_app_id="1", data_dir=str(tmp_path / "data")),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2, err
    message = err.decode()
    assert "MODELSHIP_CONTAINER_ENGINE_URL" in message and "MODELSHIP_SANDBOX=off" in message
    assert "Traceback" not in message
    assert not (tmp_path / "data").exists(), "refused before touching the data directory or the database"


async def test_every_command_acting_as_the_app_names_the_same_missing_credential(tmp_path: Path) -> None:
    """serve, deploy, promote and rollback get their App client from the composition root: one message."""
    messages = []
    for command in (
        ["serve"],
        ["deploy", "--repo", REPO, "--pr", "1", "--env", "staging"],
        ["promote", "--repo", REPO, "--env", "production"],
        ["rollback", "--repo", REPO, "--env", "production"],
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            *command,
            cwd=tmp_path,
            env=serve_env(tmp_path, webhook_secret="s", sandbox="off", data_dir=str(tmp_path / "data")),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode in (1, 2) and "Traceback" not in err.decode(), (command, err)
        messages.append(err.decode().strip().split(": ", 1)[-1] if command[0] != "deploy" else err.decode().strip())
    assert messages == ["MODELSHIP_GITHUB_APP_ID is required (the GitHub App's numeric id)"] * 4
    assert not (tmp_path / "data").exists(), "refused before touching the data directory or the database"


async def test_serve_with_an_engine_that_is_not_there_refuses_naming_the_setting(tmp_path: Path) -> None:
    (tmp_path / "app.pem").write_bytes(generate_key()[0])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "serve",
        cwd=tmp_path,
        env=serve_env(
            tmp_path,
            webhook_secret="s",
            github_app_id="1",
            github_private_key_path=str(tmp_path / "app.pem"),
            data_dir=str(tmp_path / "data"),
            container_engine_url=f"unix://{tmp_path / 'gone.sock'}",
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    message = err.decode()
    assert process.returncode == 2 and "Traceback" not in message, message
    assert "MODELSHIP_CONTAINER_ENGINE_URL: cannot reach the container engine" in message


async def test_serve_with_the_sandbox_off_starts_and_a_pr_gets_the_turned_off_check_run(
    devhub: RunningDevHub, tmp_path: Path
) -> None:
    hub = devhub.hub
    app_id, key = await hub.create_app()
    (tmp_path / "app.pem").write_text(key)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "serve",
        cwd=tmp_path,
        env=serve_env(
            tmp_path,
            webhook_secret=WEBHOOK_SECRET,
            github_app_id=str(app_id),
            github_private_key_path=str(tmp_path / "app.pem"),
            github_api_url=devhub.api_url,
            data_dir=str(tmp_path / "data"),
            port=str(port),
            sandbox="off",
        ),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            doctor = await ready_with_checks(s, url)
            hub.sender.url = f"{url}/webhooks/github"
            await hub.create_repo(REPO, {".modelship.yml": CONFIG, "models/churn.skops": b"v1"})
            await hub.install("acme", [REPO])
            await hub.push(REPO, "retrain", {"models/churn.skops": b"v2"}, message="Retrain")
            number = await hub.open_pr(REPO, "retrain", title="Retrain")
            head = hub.pull(REPO, number).head_sha
            runs = await completed_check_runs(devhub, head)
    except TimeoutError:
        process.terminate()
        raise AssertionError((await process.communicate())[1].decode()[-3000:]) from None
    finally:
        hub.sender.url = None
        if process.returncode is None:
            process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 0, err.decode()[-2000:]
    checks = {c["name"]: c for c in doctor["checks"]}
    assert checks["sandbox"]["status"] == "ok" and "turned off" in checks["sandbox"]["detail"]
    assert '"doctor: OK      sandbox' in err.decode(), "start-up checks are logged"
    assert [(r.name, r.conclusion, r.output["title"]) for r in runs] == [
        ("modelship/review", "neutral", "Not evaluated")
    ]
    assert TURNED_OFF in runs[0].output["summary"]
    comments = [c.body for c in hub.comments.values() if c.repo == REPO and c.user.login == "modelship[bot]"]
    assert len(comments) == 1 and TURNED_OFF in comments[0]


async def ready_with_checks(s: aiohttp.ClientSession, url: str) -> dict:  # type: ignore[type-arg]
    """/readyz once the start-up checks have run."""
    for _ in range(600):
        try:
            async with s.get(f"{url}/readyz") as r:
                body = await r.json()
                if r.status == 200 and body["doctor"]["checked_at"] is not None:
                    return body["doctor"]  # type: ignore[no-any-return]
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError("serve never became ready with its start-up checks")


async def completed_check_runs(devhub: RunningDevHub, head: str) -> list:  # type: ignore[type-arg]
    for _ in range(300):
        runs = [r for r in devhub.hub.check_runs.values() if r.head_sha == head]
        if runs and all(r.status == "completed" for r in runs):
            return runs
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no completed check run on {head}")
