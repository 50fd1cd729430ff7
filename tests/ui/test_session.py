"""Dashboard sessions: the cookie carries a signed, expiring id and nothing else; a tampered, expired or
foreign cookie finds no session."""

from __future__ import annotations

from bot.ui.session import SessionStore, same, sign, unsign

KEY = b"k" * 32


def test_a_session_cookie_holds_no_token_and_expires() -> None:
    store = SessionStore(KEY, lifetime=3600)
    cookie, session = store.create("maya", "ghu_secret", {"acme/churn": "maintain"}, now=1000.0)
    assert "ghu_secret" not in cookie and "maya" not in cookie
    assert store.get(cookie, now=2000.0) is session
    assert store.get(cookie, now=1000.0 + 3601) is None  # expired
    assert store.get(cookie[:-2] + "xx", now=2000.0) is None  # tampered MAC
    sid, _, rest = cookie.partition(".")
    assert store.get(f"{sid}.9999999999.{rest.partition('.')[2]}", now=2000.0) is None  # expiry pushed out
    assert SessionStore(b"o" * 32, 3600).get(cookie, now=2000.0) is None  # another server's key
    store.drop(cookie, now=2000.0)
    assert store.get(cookie, now=2000.0) is None


def test_signing_and_csrf_comparison() -> None:
    signed = sign(KEY, "state.2000")
    assert unsign(KEY, signed, now=1999) == "state"
    assert unsign(KEY, signed, now=2001) is None
    assert unsign(KEY, "state.2000", now=1) is None
    assert same("a", "a") and not same("a", "b") and not same(None, None) and not same("", "")
