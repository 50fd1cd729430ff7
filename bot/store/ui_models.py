"""Dashboard sessions (owner: bot.ui.session.SessionStore, the one reader and writer of `ui_sessions`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Double, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.base import Base


class UiSession(Base):
    """One signed-in dashboard user. In the database so that a restart signs nobody out and every replica
    sees the same sessions; the row is deleted on sign-out and once expired."""

    __tablename__ = "ui_sessions"
    __table_args__ = (Index("ix_ui_sessions_expires_at", "expires_at"),)

    # sha256 of the session id the cookie carries: a copy of this table opens no session.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    login: Mapped[str] = mapped_column(String(256))
    # The user's GitHub token, encrypted (AES-GCM, key derived from MODELSHIP_UI_SESSION_SECRET); never clear.
    token: Mapped[str] = mapped_column(Text)
    repos: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # full name -> the user's permission
    csrf: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[float] = mapped_column(Double)  # unix seconds
    refreshed_at: Mapped[float] = mapped_column(Double)
