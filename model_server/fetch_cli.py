"""`modelship fetch-model`: what a model server runs before serving (the chart's start-up step)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from contract import oci
from model_server.fetch import RegistryLogin, fetch_model


@click.command("fetch-model")
@click.option("--artifact", required=True, help="registry/repository@sha256:<manifest digest> (values: model.artifact)")
@click.option("--sha256", "file_sha256", required=True, help="sha256 of the model file (values: model.sha256)")
@click.option("--dest", type=click.Path(path_type=Path), required=True, help="Directory to write the model into.")
@click.option(
    "--insecure", is_flag=True, envvar="MODELSHIP_REGISTRY_INSECURE", help="Plain HTTP (a loopback registry)."
)
@click.option("--username", envvar="MODELSHIP_REGISTRY_USERNAME", help="Registry user (MODELSHIP_REGISTRY_USERNAME).")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    envvar="MODELSHIP_REGISTRY_PASSWORD_FILE",
    help="File holding the registry password or token (MODELSHIP_REGISTRY_PASSWORD_FILE); never an argument.",
)
def fetch_model_command(
    artifact: str, file_sha256: str, dest: Path, insecure: bool, username: str | None, password_file: Path | None
) -> None:
    """Download a model artifact BY DIGEST, verify manifest, layer and file sha256, write it to DEST.

    Exits 1 with the reason when anything does not match what the values pin; nothing is written then.
    """
    try:
        reader = RegistryLogin(insecure, username, password_file).reader(artifact)
        path = fetch_model(reader, artifact, file_sha256, dest)
    except oci.ArtifactError as exc:
        click.echo(f"modelship fetch-model: refused: {exc}", err=True)
        sys.exit(1)
    click.echo(f"verified {artifact} -> {path} (sha256 {file_sha256})")
