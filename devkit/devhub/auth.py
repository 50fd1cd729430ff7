"""GitHub App authentication as GitHub enforces it: RS256 app JWTs and installation tokens."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devkit.devhub.model import App

MAX_JWT_LIFETIME = 600  # GitHub refuses an `exp` more than ten minutes ahead
TOKEN_LIFETIME = 3600


class AuthError(Exception):
    """Carries GitHub's message for a 401."""


def generate_key() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a fresh 2048-bit RSA key, as GitHub generates for an app."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def bearer(headers: Mapping[str, str]) -> str | None:
    """The credential from `Authorization: token X` / `Bearer X` (scheme is case-insensitive)."""
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() in ("token", "bearer") and value.strip() else None


def verify_app_jwt(token: str, apps: Mapping[int, App], now: float | None = None) -> App:
    now = time.time() if now is None else now
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError as exc:
        raise AuthError("A JSON web token could not be decoded") from exc
    app = next((a for a in apps.values() if str(issuer) in (str(a.id), a.client_id)), None)
    if app is None:
        raise AuthError("Integration not found" if issuer is not None else "'Issuer' claim ('iss') must be an Integer")
    try:
        claims = jwt.decode(
            token,
            app.public_key_pem,
            algorithms=["RS256"],
            options={"require": ["iat", "exp", "iss"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise AuthError("A JSON web token could not be decoded") from exc
    exp, iat = int(claims["exp"]), int(claims["iat"])
    if exp <= now:
        raise AuthError(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at "
            "which the assertion expires"
        )
    if exp - now > MAX_JWT_LIFETIME + 30:
        raise AuthError("'Expiration time' claim ('exp') is too far in the future")
    if iat > now + 30:
        raise AuthError(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
        )
    return app


def new_token() -> str:
    return "ghs_" + secrets.token_urlsafe(27)[:36]
