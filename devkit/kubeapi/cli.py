"""`python -m devkit kubeapi`: serve the Kubernetes API stand-in until interrupted, with a kubeconfig for it."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click


@click.command("kubeapi")
@click.option("--kubeconfig", type=click.Path(path_type=Path), required=True, help="Where to write its kubeconfig.")
@click.option("--podman-url", default=None, help="Engine API for the kubelet (default: the project's podman service).")
@click.option("--no-kubelet", is_flag=True, help="The API and controllers only: pods stay Pending.")
def kubeapi(kubeconfig: Path, podman_url: str | None, no_kubelet: bool) -> None:
    """Run kubeapi, the Kubernetes API stand-in with a podman kubelet (dev kit, docs/kubeapi.md)."""
    from bot.sandbox.docker_engine import connect
    from devkit.kubeapi import KubeAPI
    from devkit.processes import podman_url as start_podman

    async def serve() -> None:
        client = None if no_kubelet else connect(podman_url or start_podman())
        async with KubeAPI(docker_client=client) as api:
            api.write_kubeconfig(kubeconfig)
            click.echo(f"kubeapi listening on {api.url}; kubeconfig: {kubeconfig}")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()

    asyncio.run(serve())
