"""GitHub App edge: app JWT -> installation tokens, a gidgethub client that retries and backs off."""

from bot.github.app import GitHubApp
from bot.github.client import GitHubClient
from bot.github.redact import redact
from bot.github.retry import GitHubRetriesExhausted, RetryPolicy

__all__ = ["GitHubApp", "GitHubClient", "GitHubRetriesExhausted", "RetryPolicy", "redact"]
