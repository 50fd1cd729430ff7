"""Scrub credentials from text before it reaches a log line, an exception or a comment."""

from __future__ import annotations

import logging
import re

_MASK = "***"

# Order matters: the specific shapes first, so the generic `token <x>` rule never half-masks them.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(x-access-token:)[^@\s/]+(@)", re.IGNORECASE), rf"\g<1>{_MASK}\g<2>"),
    (re.compile(r"(\bbearer\s+)[^\s'\",;]+", re.IGNORECASE), rf"\g<1>{_MASK}"),
    # After "token" only something credential-sized, so prose like "the token for 5" stays readable.
    (re.compile(r"(\btoken\s+)[A-Za-z0-9_.~+/=-]{12,}", re.IGNORECASE), rf"\g<1>{_MASK}"),
    (re.compile(r"(\"token\"\s*:\s*\")[^\"]*(\")"), rf"\g<1>{_MASK}\g<2>"),
    (re.compile(r"\b(?:gh[pousr]_|github_pat_)[A-Za-z0-9_-]{16,}"), _MASK),
    # A bare JWT (header.payload.signature, both JSON parts start with '{"' -> 'eyJ').
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+"), _MASK),
)


def redact(text: str) -> str:
    """Return ``text`` with GitHub tokens, bearer JWTs and git credentials replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that redacts the formatted message, so no handler ever sees a token."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
