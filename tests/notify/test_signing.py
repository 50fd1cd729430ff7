"""The generic webhook's signature, as a receiver checks it."""

from __future__ import annotations

from bot.notify.signing import sign, verify

SECRET = b"s3cret"
BODY = b'{"event":"deploy.live"}'


def test_a_signed_body_verifies_with_the_same_secret_only() -> None:
    signature = sign(SECRET, 1_700_000_000, BODY)

    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(SECRET, BODY, "1700000000", signature, now=1_700_000_010)
    assert not verify(b"wrong", BODY, "1700000000", signature, now=1_700_000_010)


def test_the_timestamp_and_body_are_covered() -> None:
    signature = sign(SECRET, 1_700_000_000, BODY)

    assert not verify(SECRET, BODY + b" ", "1700000000", signature, now=1_700_000_010)
    assert not verify(SECRET, BODY, "1700000001", signature, now=1_700_000_010)  # a re-dated replay


def test_deliveries_outside_the_replay_window_are_refused() -> None:
    signature = sign(SECRET, 1_700_000_000, BODY)

    assert not verify(SECRET, BODY, "1700000000", signature, now=1_700_000_000 + 301)
    assert not verify(SECRET, BODY, "1700000000", signature, now=1_700_000_000 - 301)
    assert not verify(SECRET, BODY, None, signature, now=1_700_000_000)
    assert not verify(SECRET, BODY, "soon", signature, now=1_700_000_000)
