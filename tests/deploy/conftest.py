from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.devhub import RunningDevHub


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    return done.stdout


@dataclass
class DeployHub:
    """A deploy repository on devhub (GitHub simulator, git smart HTTP) with an installation token.

    The bare repository refuses non-fast-forward updates and logs every ref update, so a test can
    prove no force push happened.
    """

    running: RunningDevHub
    full_name: str
    token: str

    @property
    def url(self) -> str:
        return f"{self.running.base_url}/{self.full_name}.git"

    @property
    def bare(self) -> Path:
        return self.running.hub.git.path(self.full_name)

    def commits(self, ref: str = "main") -> list[str]:
        return git("rev-list", ref, cwd=self.bare).split()

    def first_parent_chain(self, ref: str = "main") -> list[str]:
        return git("rev-list", "--first-parent", ref, cwd=self.bare).split()

    def show(self, path: str, ref: str = "main") -> str:
        return git("show", f"{ref}:{path}", cwd=self.bare)

    def files(self, ref: str = "main") -> list[str]:
        return git("ls-tree", "-r", "--name-only", ref, cwd=self.bare).split()

    def branches(self) -> list[str]:
        return git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=self.bare).split()

    def ref_updates(self, ref: str = "refs/heads/main") -> list[tuple[str, str]]:
        """(old, new) for every update of ``ref`` since the fixture was set up."""
        log = (self.bare / "logs" / ref).read_text().splitlines()
        return [(line.split()[0], line.split()[1]) for line in log]


@pytest.fixture
async def deploy_hub(devhub: RunningDevHub) -> DeployHub:
    hub = devhub.hub
    full_name = "acme/deploy"
    await hub.create_app()
    await hub.create_repo(full_name, {"README.md": "# deploy repository\n"})
    installation = await hub.install("acme", [full_name])
    bare = hub.git.path(full_name)
    git("config", "receive.denyNonFastForwards", "true", cwd=bare)
    git("config", "core.logAllRefUpdates", "always", cwd=bare)
    return DeployHub(devhub, full_name, hub.issue_token(installation).value)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "clones"
