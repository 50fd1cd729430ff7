"""The pure parts of chat-ops lookups: who is a fork, which teams an allow-list names."""

from __future__ import annotations

from bot.chatops.lookups import from_fork, team_refs


def pull(head_repo: str | None, base_repo: str = "acme/churn") -> dict:
    head = {"repo": {"full_name": head_repo}} if head_repo else {"repo": None}
    return {"head": head, "base": {"repo": {"full_name": base_repo}}}


def test_a_pr_is_from_a_fork_when_its_head_lives_elsewhere_or_is_gone() -> None:
    assert not from_fork(pull("acme/churn"))
    assert from_fork(pull("mallory/churn"))
    assert from_fork(pull(None)), "a deleted fork is still untrusted"


def test_team_entries_name_org_and_slug_defaulting_to_the_repos_owner() -> None:
    refs = team_refs(["team:ml-release", "user:alice", "team:other-org/sre", "team:", "bogus"], "acme")
    assert refs == {("acme", "ml-release"), ("other-org", "sre")}
