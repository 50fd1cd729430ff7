"""`MODELSHIP_UI=on` without the sign-in settings is refused at start-up, naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.app import StartupError, build_service
from bot.settings import Settings, load_settings


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({}, "MODELSHIP_UI_CLIENT_ID"),
        ({"ui_client_id": "Iv1.x"}, "MODELSHIP_UI_CLIENT_SECRET"),
        ({"ui_client_id": "Iv1.x", "ui_client_secret": SecretStr("s")}, "MODELSHIP_UI_SESSION_SECRET"),
    ],
)
async def test_the_dashboard_without_its_sign_in_settings_is_refused(
    tmp_path: Path, given: dict[str, object], missing: str
) -> None:
    settings = Settings(
        webhook_secret=SecretStr("w"),
        github_app_id=1,
        github_private_key=SecretStr("unused"),
        data_dir=tmp_path,
        sandbox="off",
        ui="on",
        **given,
    )
    with pytest.raises(StartupError, match=missing) as refused:
        await build_service(settings, github=object())  # type: ignore[arg-type]
    assert refused.value.setting == missing
    assert not (tmp_path / "modelship.db").exists()  # refused before the database was touched


def test_a_short_session_secret_is_refused_by_name() -> None:
    with pytest.raises(Exception, match="MODELSHIP_UI_SESSION_SECRET: must be at least 32 characters"):
        load_settings(webhook_secret="w", ui_session_secret="short")
