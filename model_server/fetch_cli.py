"""`modelship fetch-model`: what a model server runs before serving (the chart's start-up step)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from contract import oci
from model_server.fetch import RegistryLogin, fetch_model
from model_server.git_source import GitSourceError, fetch_from_git


def fetch_git(url: str, revision: str, path: str, file_sha256: str, dest: Path, token_file: Path | None) -> Path:
    """The git source, with the token read from its file; exits 1 naming what did not match."""
    token = token_file.read_text().strip() if token_file is not None else None
    try:
        return fetch_from_git(url, revision, path, file_sha256, dest, token)
    except GitSourceError as exc:
        click.echo(f"modelship fetch-model: refused: {exc}", err=True)
        sys.exit(1)


@click.command("fetch-model")
@click.option("--artifact", help="registry/repository@sha256:<manifest digest> (values: model.artifact)")
@click.option("--git", "git_url", help="Or: the model repository's git URL (the chart's git source; Git LFS resolved).")
@click.option("--revision", help="With --git: the full commit SHA to fetch (values: model.revision).")
@click.option("--path", "model_path", help="With --git: the model file in the repository (values: model.path).")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    envvar="MODELSHIP_GIT_TOKEN_FILE",
    help="With --git: file holding a read token (MODELSHIP_GIT_TOKEN_FILE); never an argument.",
)
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
    artifact: str | None,
    git_url: str | None,
    revision: str | None,
    model_path: str | None,
    token_file: Path | None,
    file_sha256: str,
    dest: Path,
    insecure: bool,
    username: str | None,
    password_file: Path | None,
) -> None:
    """Download a model artifact BY DIGEST, verify manifest, layer and file sha256, write it to DEST.

    Or, with --git, the file at --path of a repository at commit --revision (Git LFS resolved), checked
    against --sha256. Exits 1 with the reason when anything does not match what the values pin; nothing
    is written then.
    """
    if (artifact is None) == (git_url is None):
        raise click.UsageError("give exactly one of --artifact REF or --git URL")
    if git_url is not None:
        if not revision or not model_path:
            raise click.UsageError("--git needs --revision and --path")
        git_path = fetch_git(git_url, revision, model_path, file_sha256, dest, token_file)
        click.echo(f"verified {model_path} at {revision} -> {git_path} (sha256 {file_sha256})")
        return
    assert artifact is not None
    try:
        reader = RegistryLogin(insecure, username, password_file).reader(artifact)
        path = fetch_model(reader, artifact, file_sha256, dest)
    except oci.ArtifactError as exc:
        click.echo(f"modelship fetch-model: refused: {exc}", err=True)
        sys.exit(1)
    click.echo(f"verified {artifact} -> {path} (sha256 {file_sha256})")
