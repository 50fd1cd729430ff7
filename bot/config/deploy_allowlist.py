"""The operator's deploy allow-list (``MODELSHIP_DEPLOY_ALLOWLIST``): which model repositories may
deploy to which deploy repositories. Parsed with the settings; bot.deploy.tenancy applies it.

Comma-separated ``MODEL=DEPLOY`` entries whose sides are ``owner/name`` glob patterns (``*``, ``?``;
case-insensitive); ``{owner}`` on the deploy side stands for the model repository's owner. Unset (or
empty): ``*/*={owner}/*``, i.e. only repositories of the model repository's own owner.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

SETTING = "MODELSHIP_DEPLOY_ALLOWLIST"
DEFAULT_ENTRY = "*/*={owner}/*"

_PATTERN = re.compile(r"^[A-Za-z0-9_.*?-]+/[A-Za-z0-9_.*?-]+$")


@dataclass(frozen=True)
class AllowRule:
    """One ``MODEL=DEPLOY`` entry."""

    model: str
    deploy: str

    @property
    def text(self) -> str:
        return f"{self.model}={self.deploy}"

    def allows(self, model_repo: str, deploy_repo: str) -> bool:
        owner = model_repo.split("/", 1)[0]
        # `{owner}` is replaced literally (escaped), so an owner cannot smuggle glob characters in.
        deploy = fnmatch.translate(self.deploy.lower()).replace(re.escape("{owner}"), re.escape(owner.lower()))
        return fnmatch.fnmatchcase(model_repo.lower(), self.model.lower()) and bool(
            re.fullmatch(deploy, deploy_repo.lower())
        )


def parse_rule(entry: str) -> AllowRule:
    """``MODEL=DEPLOY`` -> AllowRule; ValueError says what is wrong with the entry."""
    model, sep, deploy = (part.strip() for part in entry.partition("="))
    if not sep or "=" in deploy:
        raise ValueError(f"entry {entry!r} must be MODEL=DEPLOY, e.g. acme/*=acme/deploy")
    if not _PATTERN.match(model):
        raise ValueError(f"entry {entry!r}: {model!r} must be an owner/name pattern, e.g. acme/* or acme/models")
    if not _PATTERN.match(deploy.replace("{owner}", "o")) or deploy.count("{owner}") > 1:
        raise ValueError(
            f"entry {entry!r}: {deploy!r} must be an owner/name pattern, e.g. acme/deploy or {{owner}}/deploy"
        )
    if deploy.find("{owner}") > 0:
        raise ValueError(f"entry {entry!r}: {{owner}} can only stand for the whole owner, e.g. {{owner}}/deploy")
    return AllowRule(model, deploy)


@dataclass(frozen=True)
class DeployAllowlist:
    """The operator's allowed (model repository, deploy repository) pairs."""

    rules: tuple[AllowRule, ...]
    configured: bool  # False: MODELSHIP_DEPLOY_ALLOWLIST is unset and the same-owner default applies

    @classmethod
    def parse(cls, entries: Iterable[str]) -> DeployAllowlist:
        rules = tuple(parse_rule(e) for e in entries if e.strip())
        if not rules:
            return cls.default()
        return cls(rules, configured=True)

    @classmethod
    def default(cls) -> DeployAllowlist:
        return cls((parse_rule(DEFAULT_ENTRY),), configured=False)

    def allows(self, model_repo: str, deploy_repo: str) -> bool:
        return any(rule.allows(model_repo, deploy_repo) for rule in self.rules)

    def describe(self) -> str:
        if not self.configured:
            return f"{SETTING} is unset, so only repositories of the model repository's own owner are allowed"
        return f"{SETTING} allows only: " + ", ".join(f"`{r.text}`" for r in self.rules)
