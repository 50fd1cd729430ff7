"""Which deploy repository a model repository may write to (bot.deploy.tenancy): the pure decision."""

from __future__ import annotations

import pytest

from bot.config.deploy_allowlist import SETTING, DeployAllowlist, parse_rule
from bot.deploy.tenancy import SAME_INSTALLATION, decide

DEFAULT = DeployAllowlist.default()


def test_by_default_only_the_model_repositorys_own_owner_is_allowed() -> None:
    assert decide("acme/models", 1, "acme/deploy", 1, DEFAULT) is None
    assert decide("Acme/Models", 1, "acme/DEPLOY", 1, DEFAULT) is None  # GitHub names ignore case

    refusal = decide("eve/models", 7, "victim/infra", 9, DEFAULT)

    assert refusal is not None and refusal.rule == SETTING
    assert "`eve/models` may not deploy to `victim/infra`" in refusal.message
    assert "MODELSHIP_DEPLOY_ALLOWLIST is unset" in refusal.message and "own owner" in refusal.message


def test_a_configured_allowlist_allows_only_its_pairs() -> None:
    pairs = DeployAllowlist.parse(["acme/*=acme/deploy", "acme/models=acme/infra", "*/*={owner}/gitops"])

    assert decide("acme/churn", 1, "acme/deploy", 1, pairs) is None
    assert decide("acme/models", 1, "acme/infra", 1, pairs) is None
    assert decide("solo/models", 3, "solo/gitops", 3, pairs) is None

    refusal = decide("acme/churn", 1, "acme/infra", 1, pairs)  # same installation, not a listed pair
    assert refusal is not None and refusal.rule == SETTING
    assert "`acme/*=acme/deploy`, `acme/models=acme/infra`, `*/*={owner}/gitops`" in refusal.message
    # `{owner}` is the model repository's owner, never a wildcard for somebody else's.
    assert decide("eve/models", 7, "victim/gitops", 9, pairs) is not None


def test_an_allowed_pair_in_another_installation_is_still_refused() -> None:
    too_broad = DeployAllowlist.parse(["*/*=*/*"])

    refusal = decide("eve/models", 7, "victim/infra", 9, too_broad)

    assert refusal is not None and refusal.rule == SAME_INSTALLATION
    assert "same-installation rule" in refusal.message and "`victim/infra`" in refusal.message
    assert "9" not in refusal.message  # the other tenant's installation id is not shown


def test_a_deploy_repository_without_the_app_names_the_key_to_fix() -> None:
    refusal = decide("acme/models", 1, "acme/nowhere", None, DEFAULT)

    assert refusal is not None and refusal.rule == SAME_INSTALLATION
    assert "not installed on the deploy repository `acme/nowhere`" in refusal.message
    assert "deploy.repository" in refusal.message


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("acme/models", "must be MODEL=DEPLOY"),
        ("acme/models=acme/infra=x", "must be MODEL=DEPLOY"),
        ("acme=acme/deploy", "'acme' must be an owner/name pattern"),
        ("acme/*=https://github.com/acme/deploy", "must be an owner/name pattern"),
        ("acme/*=x{owner}/deploy", "{owner} can only stand for the whole owner"),
    ],
)
def test_bad_entries_are_named(entry: str, why: str) -> None:
    with pytest.raises(ValueError, match="entry") as caught:
        parse_rule(entry)
    assert why in str(caught.value)


def test_an_empty_allowlist_is_the_default() -> None:
    assert DeployAllowlist.parse(["", " "]) == DEFAULT and not DEFAULT.configured
