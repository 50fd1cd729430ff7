"""Which deploy repository a model repository may write to: one pure decision for every write path.

``.modelship.yml`` names its deploy repository (``deploy.repository``), and the model repository's
own maintainers write that file, so the name is untrusted: without a check, a merge in
``eve/models`` could commit into ``victim/infra`` whenever the app is installed on both. Two rules
must both hold before anything reads or writes a deploy repository (merge deploy, ``deploy`` /
``promote`` / ``unpin`` from chat-ops or the CLI, and the guard's rollback):

1. **allow-list** — the operator allows the pair with ``MODELSHIP_DEPLOY_ALLOWLIST``:
   comma-separated ``MODEL=DEPLOY`` entries whose sides are ``owner/name`` glob patterns
   (``*``, ``?``; case-insensitive), and ``{owner}`` on the deploy side stands for the model
   repository's owner. Example: ``acme/*=acme/deploy,acme/models=acme/infra``. Unset (or empty):
   ``*/*={owner}/*``, i.e. only repositories of the model repository's own owner.
2. **same installation** — the deploy repository is in the same GitHub App installation as the
   model repository. GitHub installs an app per account, so this also keeps organisations apart
   when an allow-list entry is too broad.

The allow-list is checked first, so a refused pair never reveals whether the app is installed on
the other repository.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config.deploy_allowlist import SETTING, DeployAllowlist

SAME_INSTALLATION = "same installation"


@dataclass(frozen=True)
class Refusal:
    """Why a model repository may not use a deploy repository; ``rule`` names the rule that refused."""

    rule: str
    message: str

    def __str__(self) -> str:
        return self.message


def decide(
    model_repo: str,
    model_installation: int | None,
    deploy_repo: str,
    deploy_installation: int | None,
    allowlist: DeployAllowlist,
) -> Refusal | None:
    """None when ``model_repo`` may read and write ``deploy_repo``; else the refusal, naming its rule.

    ``*_installation`` is the GitHub App installation that covers each repository (None: not installed).
    """
    key = "`deploy.repository` in `.modelship.yml`"
    if not allowlist.allows(model_repo, deploy_repo):
        return Refusal(
            SETTING,
            f"refused by {SETTING}: `{model_repo}` may not deploy to `{deploy_repo}` ({key}); "
            f"{allowlist.describe()}. Ask the Modelship operator to add `{model_repo}={deploy_repo}` "
            f"to {SETTING}, or name an allowed deploy repository",
        )
    if model_installation is None:
        return Refusal(
            SAME_INSTALLATION,
            f"the Modelship app is not installed on the model repository `{model_repo}`, so it cannot deploy from it",
        )
    if deploy_installation is None:
        return Refusal(
            SAME_INSTALLATION,
            f"the Modelship app is not installed on the deploy repository `{deploy_repo}` ({key}): install it "
            "there with contents: write and pull requests: write",
        )
    if deploy_installation != model_installation:
        return Refusal(
            SAME_INSTALLATION,
            f"refused by the same-installation rule: the deploy repository `{deploy_repo}` ({key}) is not in "
            f"the GitHub App installation of `{model_repo}`; a model repository may only deploy to a repository "
            "of its own installation (add it to that installation, or name one that is)",
        )
    return None
