"""Credentials never survive redaction, and ordinary text is left alone."""

from __future__ import annotations

import logging

import pytest

from bot.github.redact import RedactingFilter, redact

TOKEN = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiI0MiJ9.c2lnbmF0dXJlLWJ5dGVz_-x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: token {TOKEN}", "Authorization: token ***"),
        (f"authorization: Bearer {JWT}", "authorization: Bearer ***"),
        (f"{{'authorization': 'token {TOKEN}'}}", "{'authorization': 'token ***'}"),
        (
            f"git clone https://x-access-token:{TOKEN}@github.com/o/r.git failed",
            "git clone https://x-access-token:***@github.com/o/r.git failed",
        ),
        (
            f'{{"token": "{TOKEN}", "expires_at": "2026-01-01T00:00:00Z"}}',
            '{"token": "***", "expires_at": "2026-01-01T00:00:00Z"}',
        ),
        (f"leaked {TOKEN} here", "leaked *** here"),
        ("simulator ghs_Ab-_cD3fGh1jKlMn0pQr-StUv_wXyZ012345 token", "simulator *** token"),
        (f"jwt={JWT}", "jwt=***"),
    ],
)
def test_credentials_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert TOKEN not in redact(text) and JWT not in redact(text)


def test_text_without_credentials_is_unchanged() -> None:
    text = "GET https://api.github.com/repos/o/r/pulls/1: 502 (tokenizer, 3 tokens; the token for 5 expired)"
    assert redact(text) == text


def test_logging_filter_redacts_arguments_before_any_handler_formats_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("tests.github.redact")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("pushing to %s", f"https://x-access-token:{TOKEN}@ghe.example/o/r.git")
    assert caplog.messages == ["pushing to https://x-access-token:***@ghe.example/o/r.git"]
