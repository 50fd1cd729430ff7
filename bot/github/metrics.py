"""Prometheus metrics for calls to GitHub (served by the bot's /metrics from the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

GITHUB_REQUESTS = Counter(
    "github_requests_total",
    "HTTP requests sent to the GitHub API, by method and response status ('error' for transport failures).",
    ["method", "status"],
)

GITHUB_RATELIMIT_REMAINING = Gauge(
    "github_ratelimit_remaining",
    "x-ratelimit-remaining from GitHub's latest response, per installation ('app' for the app itself).",
    ["installation"],
)
