"""`python -m devkit devhub`: run the GitHub simulator as a process."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

import click

from devkit.devhub.server import serve


@click.command("devhub")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8300, show_default=True, type=int, help="Port (0 picks a free one).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the bare git repositories live (default: a fresh temporary directory).",
)
@click.option(
    "--webhook-url",
    default=None,
    envvar="DEVHUB_WEBHOOK_URL",
    help="Where to POST webhook deliveries, e.g. http://127.0.0.1:8000/webhooks/github.",
)
@click.option(
    "--webhook-secret",
    default=None,
    envvar="DEVHUB_WEBHOOK_SECRET",
    help="Secret used to sign deliveries (X-Hub-Signature-256).",
)
@click.option(
    "--git-prefix",
    default="",
    help="Serve git under this path (e.g. /git) instead of the host root; clone_url follows.",
)
def devhub(
    host: str, port: int, data_dir: Path | None, webhook_url: str | None, webhook_secret: str | None, git_prefix: str
) -> None:
    """Run devhub, a local GitHub: REST API, app auth, git hosting and signed webhooks."""
    if webhook_url and not webhook_secret:
        raise click.UsageError("--webhook-secret is required with --webhook-url: receivers must verify signatures")
    with tempfile.TemporaryDirectory(prefix="devhub-") as tmp, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(data_dir or Path(tmp), host, port, webhook_url, webhook_secret, git_prefix))
