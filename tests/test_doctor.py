"""`modelship doctor`: the real CLI in a subprocess against devhub, podman and Prometheus, and /readyz."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.doctor import Check
from bot.store.db import make_engine, migrate
from devkit.devhub import RunningDevHub
from devkit.devhub.auth import generate_key
from tests.fixtures.bot import bot_running
from tests.fixtures.devhub import WEBHOOK_SECRET
from tests.fixtures.prometheus import PrometheusServer, free_port

ROOT = Path(__file__).resolve().parents[1]
MODEL_CONFIG = (
    b"version: 1\n"
    b"models:\n"
    b"  - {name: churn, path: models/churn.skops, task: classification,"
    b" dataset: {path: data/eval.csv, target: label}}\n"
    b"deploy: {repository: acme/deploy}\n"
    b"environments:\n  staging: {auto: true}\n"
)


async def migrated_database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'doctor.db'}"
    engine = make_engine(url)
    await migrate(engine)
    await engine.dispose()
    return url


async def doctor(tmp_path: Path, *args: str, **settings: str) -> tuple[int, str, str]:
    """`python -m bot.cli doctor` with exactly these settings (no DOCKER_HOST, nothing inherited)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env |= {f"MODELSHIP_{k.upper()}": v for k, v in settings.items()}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "doctor",
        *args,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_no_engine_a_wrong_key_and_an_unreachable_prometheus_fail_one_line_each_naming_the_setting(
    devhub: RunningDevHub, tmp_path: Path
) -> None:
    app_id, _ = await devhub.hub.create_app()
    wrong_key = tmp_path / "other-app.pem"
    wrong_key.write_bytes(generate_key()[0])  # a valid RSA key, but not this App's
    settings = {
        "webhook_secret": WEBHOOK_SECRET,
        "github_app_id": str(app_id),
        "github_private_key_path": str(wrong_key),
        "github_api_url": devhub.api_url,
        "database_url": await migrated_database(tmp_path),
        "prometheus_url": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "registry": f"127.0.0.1:{free_port()}/models",  # nor here
        "registry_insecure": "true",
    }

    code, out, err = await doctor(tmp_path, **settings)

    assert code == 1, (out, err)
    failing = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failing) == 4, out
    by_check = {line.split()[1]: line for line in failing}
    assert set(by_check) == {"github_app", "sandbox", "prometheus", "registry"}, out
    assert by_check["registry"].endswith("-> fix MODELSHIP_REGISTRY") and "unreachable" in by_check["registry"]
    assert by_check["github_app"].endswith("-> fix MODELSHIP_GITHUB_PRIVATE_KEY_PATH") and "401" in out
    assert by_check["sandbox"].endswith("-> fix MODELSHIP_CONTAINER_ENGINE_URL")
    assert by_check["prometheus"].endswith("-> fix MODELSHIP_PROMETHEUS_URL") and "unreachable" in out
    assert any(line.startswith("OK") and " database " in line for line in out.splitlines()), out
    # What depends on the App is not checked (no second line for the same cause).
    assert [line.split()[1] for line in out.splitlines() if line.startswith("SKIPPED")] == [
        "github_installations",
        "deploy_repositories",
    ]
    assert "BEGIN" not in out + err, "the key never reaches the output"

    code, out, _ = await doctor(tmp_path, "--json", **settings)
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    settings_to_fix = {c["name"]: c["setting"] for c in report["checks"] if not c["ok"]}
    assert settings_to_fix == {
        "github_app": "MODELSHIP_GITHUB_PRIVATE_KEY_PATH",
        "sandbox": "MODELSHIP_CONTAINER_ENGINE_URL",
        "prometheus": "MODELSHIP_PROMETHEUS_URL",
        "registry": "MODELSHIP_REGISTRY",
    }


async def test_an_engine_url_that_answers_nothing_and_a_missing_database_name_their_settings(
    devhub: RunningDevHub, tmp_path: Path
) -> None:
    app_id, key = await devhub.hub.create_app()
    (tmp_path / "app.pem").write_text(key)
    code, out, _ = await doctor(
        tmp_path,
        webhook_secret=WEBHOOK_SECRET,
        github_app_id=str(app_id),
        github_private_key_path=str(tmp_path / "app.pem"),
        github_api_url=devhub.api_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}",
        container_engine_url=f"unix://{tmp_path / 'no-engine.sock'}",
    )
    failing = {line.split()[1]: line for line in out.splitlines() if line.startswith("FAILED")}
    assert code == 1 and set(failing) == {"database", "sandbox"}, out
    assert failing["database"].endswith("-> fix MODELSHIP_DATABASE_URL") and "modelship migrate" in out
    assert failing["sandbox"].endswith("-> fix MODELSHIP_CONTAINER_ENGINE_URL")
    assert not (tmp_path / "never-migrated.db").exists(), "the doctor creates nothing"
    assert "OK      github_app" in out and "no installations yet" in out


@pytest.mark.slow
async def test_doctor_passes_against_devhub_podman_and_prometheus(
    devhub: RunningDevHub,
    tmp_path: Path,
    podman_url: str,
    runner_image: str,
    prometheus: PrometheusServer,
    registry_host: str,
) -> None:
    hub = devhub.hub
    app_id, key = await hub.create_app()
    await hub.create_repo("acme/churn-model", {".modelship.yml": MODEL_CONFIG, "README.md": b"x"})
    await hub.create_repo("acme/deploy", {"README.md": b"deploy"})
    await hub.install("acme", ["acme/churn-model", "acme/deploy"])
    (tmp_path / "app.pem").write_text(key)

    code, out, err = await doctor(
        tmp_path,
        "--json",
        webhook_secret=WEBHOOK_SECRET,
        github_app_id=str(app_id),
        github_private_key_path=str(tmp_path / "app.pem"),
        github_api_url=devhub.api_url,
        database_url=await migrated_database(tmp_path),
        container_engine_url=podman_url,
        sandbox_image=runner_image,
        sandbox_mount_runtime="true",
        prometheus_url=prometheus.url,
        registry=f"{registry_host}/models",
        registry_insecure="true",
    )

    report = json.loads(out)
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0 and report["ok"] is True, (out, err)
    assert all(c["status"] == "ok" for c in checks.values()), out
    assert set(checks) == {
        "github_app",
        "github_installations",
        "deploy_repositories",
        "database",
        "sandbox",
        "prometheus",
        "registry",
    }
    assert checks["registry"]["detail"] == f"{registry_host}/models answers the OCI distribution API"
    assert "sklearn 1." in checks["sandbox"]["detail"] and "onnxruntime" in checks["sandbox"]["detail"]
    assert "acme/deploy" in checks["deploy_repositories"]["detail"]
    # The App asked GitHub for a token for its installation, as a review would.
    assert any(r.path.endswith("/access_tokens") and r.status == 201 for r in hub.faults.log)


async def test_a_deploy_repository_the_app_cannot_reach_is_named_with_the_repo_that_names_it(
    devhub: RunningDevHub, tmp_path: Path
) -> None:
    from bot.doctor import Doctor, skipped
    from bot.github.app import GitHubApp

    hub = devhub.hub
    app_id, key = await hub.create_app()
    await hub.create_repo("acme/churn-model", {".modelship.yml": MODEL_CONFIG})
    await hub.create_repo("acme/deploy", {"README.md": b"deploy"})
    await hub.install("acme", ["acme/churn-model"])  # not on the deploy repository
    engine = make_engine(await migrated_database(tmp_path))
    async with aiohttp.ClientSession() as session:
        checks = await Doctor(
            engine=engine,
            github=GitHubApp(app_id=app_id, private_key_pem=key, api_url=devhub.api_url, session=session),
            sandbox=skipped("sandbox", "not part of this test"),
            prometheus=None,
        ).run()
    await engine.dispose()
    deploy = next(c for c in checks if c.name == "deploy_repositories")
    assert deploy.status == "failed"
    assert "acme/deploy (named by acme/churn-model): the App is not installed there" in deploy.detail
    assert deploy.setting.startswith("install the App on acme/deploy with contents: write")
    assert [c.name for c in checks if not c.ok] == ["deploy_repositories"]


async def test_readyz_reports_the_cached_checks_and_stays_ready_when_only_prometheus_is_down(
    devhub: RunningDevHub, tmp_path: Path
) -> None:
    async with (
        bot_running(devhub, tmp_path, prometheus_url=f"http://127.0.0.1:{free_port()}") as bot,
        aiohttp.ClientSession() as s,
    ):
        async with s.get(f"{bot.url}/readyz") as r:
            before = await r.json()
        assert bot.service.checkup is not None
        checks = await bot.service.checkup.refresh()
        asked = len(devhub.hub.faults.log)
        for _ in range(3):
            async with s.get(f"{bot.url}/readyz") as r:
                status, after = r.status, await r.json()
    assert len(devhub.hub.faults.log) == asked, "/readyz reads the cached checks; it never asks GitHub"
    assert before["doctor"]["checks"] == [] and before["doctor"]["checked_at"] is None
    assert status == 200, "a down Prometheus degrades the bot; it must not take it out of the load balancer"
    assert after["message"] == "ready (degraded: prometheus; see checks)"
    reported = {c["name"]: (c["status"], c["setting"]) for c in after["doctor"]["checks"]}
    assert reported["prometheus"] == ("failed", "MODELSHIP_PROMETHEUS_URL")
    assert reported["sandbox"][0] == "ok" and reported["github_app"][0] == "ok"
    assert [Check(**{k: v for k, v in c.items() if k != "ok"}) for c in after["doctor"]["checks"]] == checks
