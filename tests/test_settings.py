"""Start-up settings: required secret, one message per bad key, YAML file, documented in the README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("MODELSHIP_") or key == "DOCKER_HOST":
            monkeypatch.delenv(key)


def test_the_webhook_secret_is_required() -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert exc.value.problems == ["MODELSHIP_WEBHOOK_SECRET: is required but not set"]


def test_every_bad_key_gets_its_own_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_WEBHOOK_SECRET", "")
    monkeypatch.setenv("MODELSHIP_PORT", "99999")
    monkeypatch.setenv("MODELSHIP_GITHUB_API_URL", "ghe.example/api/v3")
    monkeypatch.setenv("MODELSHIP_DATABASE_URL", "mysql://x")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    keys = sorted(p.split(":")[0] for p in exc.value.problems)
    assert keys == ["MODELSHIP_DATABASE_URL", "MODELSHIP_GITHUB_API_URL", "MODELSHIP_PORT", "MODELSHIP_WEBHOOK_SECRET"]


def test_defaults_and_github_enterprise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELSHIP_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("MODELSHIP_GITHUB_API_URL", "https://ghe.example/api/v3/")
    monkeypatch.setenv("MODELSHIP_REPO_ALLOWLIST", "acme/*, solo/repo")
    monkeypatch.setenv("MODELSHIP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/podman.sock")
    s = load_settings()
    assert s.github_api_url == "https://ghe.example/api/v3"
    assert s.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'modelship.db'}"
    assert s.container_engine_url == "unix:///run/podman.sock"
    assert s.repo_allowed("acme/churn") and s.repo_allowed("solo/repo") and not s.repo_allowed("evil/repo")


def test_a_yaml_file_supplies_settings_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = tmp_path / "modelship.yml"
    cfg.write_text("webhook_secret: from-file\nport: 9000\nrepo_allowlist: [acme/*]\n")
    monkeypatch.setenv("MODELSHIP_CONFIG", str(cfg))
    monkeypatch.setenv("MODELSHIP_PORT", "9001")
    s = load_settings()
    assert (s.webhook_secret.get_secret_value(), s.port, s.repo_allowlist) == ("from-file", 9001, ["acme/*"])


def test_serve_refuses_to_start_without_a_secret_and_says_why(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 2
    assert "MODELSHIP_WEBHOOK_SECRET: is required but not set" in out.stderr


def test_the_deploy_allowlist_and_root_are_checked_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("MODELSHIP_DEPLOY_ALLOWLIST", "acme/*=acme/deploy, acme/models=acme/infra")
    settings = load_settings()
    assert settings.deploy_pairs.configured and settings.deploy_pairs.allows("acme/models", "acme/infra")
    assert not settings.deploy_pairs.allows("acme/models", "acme/secrets")
    assert settings.deploy_root == "environments/"

    monkeypatch.setenv("MODELSHIP_DEPLOY_ALLOWLIST", "acme/models")
    monkeypatch.setenv("MODELSHIP_DEPLOY_ROOT", "deploy/.git/")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value)
    assert "MODELSHIP_DEPLOY_ALLOWLIST: entry 'acme/models' must be MODEL=DEPLOY" in text
    assert "MODELSHIP_DEPLOY_ROOT:" in text and "'.git' component" in text

    monkeypatch.delenv("MODELSHIP_DEPLOY_ALLOWLIST")
    monkeypatch.setenv("MODELSHIP_DEPLOY_ROOT", "clusters")
    settings = load_settings()
    assert not settings.deploy_pairs.configured and settings.deploy_root == "clusters/"


def test_the_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"MODELSHIP_{name.upper()}" for name in Settings.model_fields if f"`MODELSHIP_{name.upper()}`" not in readme
    ]
    assert not missing, f"README settings table lacks {missing}"


def test_the_example_settings_file_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import yaml

    example = yaml.safe_load((ROOT / "config" / "modelship.example.yml").read_text())
    example.pop("github_private_key_path")  # points at a deployment path
    cfg = tmp_path / "m.yml"
    cfg.write_text(yaml.safe_dump(example))
    monkeypatch.setenv("MODELSHIP_CONFIG", str(cfg))
    assert load_settings().port == example["port"]
    assert set(example) <= set(Settings.model_fields)


def test_only_entry_points_read_the_environment_or_find_the_checkout() -> None:
    """os.environ is read by bot.settings and bot.cli; where charts/ and config/ are is decided in
    bot.settings (SOURCE_ROOT) alone (the dev kit, bot/devhub and bot/demo*, is not the product)."""
    allowed_env = {"bot/settings.py", "bot/cli.py"}
    found_env, found_walk = [], []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if name.startswith(("bot/devhub/", "bot/demo")):
            continue
        text = path.read_text()
        if ("os.environ" in text or "getenv(" in text) and name not in allowed_env:
            found_env.append(name)
        if "Path(__file__).resolve().parents" in text and name != "bot/settings.py":
            found_walk.append(name)
    assert found_env == [] and found_walk == []


def test_the_registry_and_its_credentials_come_from_the_environment_or_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.app import make_registry

    monkeypatch.setenv("MODELSHIP_WEBHOOK_SECRET", "s")
    assert make_registry(load_settings()) is None  # unset: nothing is published
    secret = tmp_path / "registry-password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("MODELSHIP_REGISTRY", "registry.example:5000/models/")
    monkeypatch.setenv("MODELSHIP_REGISTRY_USERNAME", "bot")
    monkeypatch.setenv("MODELSHIP_REGISTRY_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("MODELSHIP_REGISTRY_INSECURE", "true")
    settings = load_settings()
    assert settings.registry_credentials() == ("bot", "s3cret")
    registry = make_registry(settings)
    assert registry is not None and (registry.host, registry.prefix, registry.name) == (
        "registry.example:5000",
        "models",
        "registry.example:5000/models",
    )
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MODELSHIP_REGISTRY": "https://registry.example"}, "MODELSHIP_REGISTRY: must be host[:port][/prefix]"),
        ({"MODELSHIP_REGISTRY": "registry.example/Models"}, "MODELSHIP_REGISTRY: prefix 'Models'"),
        ({"MODELSHIP_REGISTRY_USERNAME": "bot"}, "MODELSHIP_REGISTRY_USERNAME is set but no password"),
        ({"MODELSHIP_REGISTRY_PASSWORD": "p"}, "MODELSHIP_REGISTRY_USERNAME is not"),
        (
            {
                "MODELSHIP_REGISTRY_USERNAME": "bot",
                "MODELSHIP_REGISTRY_PASSWORD": "p",
                "MODELSHIP_REGISTRY_PASSWORD_FILE": "/x",
            },
            "not both",
        ),
        ({"MODELSHIP_REGISTRY_USERNAME": "bot", "MODELSHIP_REGISTRY_PASSWORD_FILE": "/nonexistent"}, "no such file"),
    ],
)
def test_bad_registry_settings_are_refused_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    monkeypatch.setenv("MODELSHIP_WEBHOOK_SECRET", "s")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert any(named in p for p in exc.value.problems), exc.value.problems


def test_notification_settings_are_checked_without_echoing_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIP_WEBHOOK_SECRET", "x")
    monkeypatch.setenv("MODELSHIP_NOTIFY_SLACK_WEBHOOK_URL", "hooks.slack.example/T0/B0/token-in-the-url")
    monkeypatch.setenv("MODELSHIP_NOTIFY_SLACK_EVENTS", "deploy.*, guard.alrt")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    problems = "\n".join(exc.value.problems)
    assert "MODELSHIP_NOTIFY_SLACK_WEBHOOK_URL: must be an http(s) URL" in problems
    assert "MODELSHIP_NOTIFY_SLACK_EVENTS" in problems and "'guard.alrt' matches no event" in problems
    assert "token-in-the-url" not in problems

    monkeypatch.delenv("MODELSHIP_NOTIFY_SLACK_WEBHOOK_URL")
    monkeypatch.setenv("MODELSHIP_NOTIFY_SLACK_EVENTS", "deploy.*,guard.alert")
    monkeypatch.setenv("MODELSHIP_NOTIFY_WEBHOOK_URL", "https://hooks.example/modelship")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert any("notify_webhook_url needs notify_webhook_secret" in p for p in exc.value.problems)

    monkeypatch.setenv("MODELSHIP_NOTIFY_WEBHOOK_SECRET", "k")
    settings = load_settings()
    assert settings.notify_slack_events == ["deploy.*", "guard.alert"] and settings.notify_webhook_events == []
