"""Who may run what: the full permission matrix, environment allow-lists and PR requirements."""

from __future__ import annotations

import pytest

from bot.chatops.authz import Decision, EnvRule, PrState, authorize
from bot.chatops.commands import COMMANDS
from bot.chatops.parser import ParsedCommand, parse_comment

PERMISSIONS = ["admin", "maintain", "write", "triage", "read", "none", None]  # None: the lookup failed
OPEN = {"help", "status"}
WRITERS = {"admin", "maintain", "write"}
READY = PrState(approved=True, mergeable=True, from_fork=False, author_permission="write")
PRODUCTION = EnvRule(allowed=("team:ml-release", "user:alice"), requires=("approved", "mergeable"))


def command(line: str) -> ParsedCommand:
    [parsed] = parse_comment(line, app_slug="modelship")
    assert isinstance(parsed, ParsedCommand)
    return parsed


def expected(name: str, permission: str | None) -> bool:
    return name in OPEN or permission in WRITERS


@pytest.mark.parametrize("permission", PERMISSIONS, ids=lambda p: p or "lookup-failed")
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_permission_matrix_without_environment_rules(name: str, permission: str | None) -> None:
    decision = authorize(name, actor="bob", permission=permission, pr_state=READY)  # type: ignore[arg-type]
    assert decision.allowed is expected(name, permission)
    assert decision.reason and decision.who_may


def test_the_matrix_spelled_out_for_deploy_and_status() -> None:
    def allowed(name: str) -> list[bool]:
        return [authorize(name, actor="bob", permission=p).allowed for p in PERMISSIONS]  # type: ignore[arg-type]

    assert allowed("deploy") == [True, True, True, False, False, False, False]
    assert allowed("status") == [True] * 7


ENV_CASES = [
    # (actor, permission, teams, pr_state, allowed)
    ("alice", "write", set(), READY, True),
    ("ALICE", "admin", set(), READY, True),
    ("bob", "write", {"ml-release"}, READY, True),
    ("bob", "maintain", {"ML-Release", "infra"}, READY, True),
    ("carol", "write", {"infra"}, READY, False),  # not listed
    ("carol", "admin", set(), READY, False),  # admins are not exempt from the list
    ("alice", "read", set(), READY, False),  # listed, but no write access
    ("bob", "triage", {"ml-release"}, READY, False),
    ("alice", None, set(), READY, False),  # lookup failed
    ("alice", "write", set(), PrState(False, True, False, "write"), False),  # not approved
    ("alice", "write", set(), PrState(True, False, False, "write"), False),  # conflicts
    ("alice", "write", set(), PrState(True, None, False, "write"), False),  # GitHub still computing
    ("alice", "write", set(), None, False),  # no PR to check
]


@pytest.mark.parametrize("name", ["deploy", "promote", "rollback", "unpin"])
@pytest.mark.parametrize(("actor", "permission", "teams", "pr", "allowed"), ENV_CASES)
def test_environment_allow_list_and_requirements(
    name: str, actor: str, permission: str | None, teams: set[str], pr: PrState | None, allowed: bool
) -> None:
    decision = authorize(
        command(f"/modelship {name} production"),
        actor=actor,
        permission=permission,  # type: ignore[arg-type]
        actor_teams=teams,
        env_rule=PRODUCTION,
        pr_state=pr,
    )
    assert decision.allowed is allowed


@pytest.mark.parametrize("name", sorted(n for n, s in COMMANDS.items() if not s.needs_env))
def test_environment_rules_do_not_apply_to_other_commands(name: str) -> None:
    decision = authorize(name, actor="carol", permission="write", env_rule=PRODUCTION, pr_state=None)
    assert decision.allowed


def test_an_environment_without_an_allow_list_only_checks_requirements() -> None:
    rule = EnvRule(requires=("approved",))
    ok = authorize("deploy", actor="carol", permission="write", env_rule=rule, pr_state=READY)
    unapproved = PrState(False, True, False, "write")
    denied = authorize("deploy", actor="carol", permission="write", env_rule=rule, pr_state=unapproved)
    assert (ok.allowed, denied.allowed) == (True, False)
    assert "approving review" in denied.reason


def test_still_computing_mergeable_asks_to_try_again() -> None:
    pr = PrState(True, None, False, "write")
    decision = authorize("deploy", actor="alice", permission="write", env_rule=PRODUCTION, pr_state=pr)
    assert not decision.allowed
    assert "try again" in decision.reason


def test_failed_lookup_says_so_and_asks_to_try_again() -> None:
    decision = authorize("evaluate", actor="alice", permission=None)
    assert not decision.allowed
    assert "try again" in decision.reason


def test_an_unknown_requirement_denies_and_names_the_key() -> None:
    rule = EnvRule(requires=("signed-off",))
    decision = authorize("deploy", actor="alice", permission="admin", env_rule=rule, pr_state=READY)
    assert not decision.allowed
    assert "environments.<env>.requires" in decision.reason and "signed-off" in decision.reason


def test_team_entries_may_name_the_organisation() -> None:
    rule = EnvRule(allowed=("team:acme/ml-release",))
    decision = authorize("deploy", actor="bob", permission="write", actor_teams={"ml-release"}, env_rule=rule)
    assert decision.allowed


def test_denials_say_who_may_run_the_command_without_pinging_them() -> None:
    decision = authorize(
        command("/modelship deploy production"), actor="carol", permission="write", env_rule=PRODUCTION
    )
    assert not decision.allowed
    assert "`production`" in decision.reason
    assert "team `ml-release`" in decision.who_may and "user `alice`" in decision.who_may
    assert "@" not in decision.who_may


def test_read_access_denial_names_the_needed_and_actual_access() -> None:
    decision = authorize("hold", actor="dave", permission="read")
    assert decision == Decision(
        False,
        "`hold` changes things, so it needs write access; you have read access.",
        "people with write, maintain or admin access to this repository",
    )


def test_an_allow_list_without_valid_entries_lets_nobody_in() -> None:
    rule = EnvRule(allowed=("alice", "group:x"))
    decision = authorize("deploy", actor="alice", permission="admin", env_rule=rule, pr_state=READY)
    assert not decision.allowed
    assert decision.who_may.startswith("nobody")


def test_any_object_with_allowed_and_requires_is_a_rule() -> None:
    class FromRepoConfig:
        allowed = ("user:alice",)
        requires = ()

    decision = authorize("rollback", actor="alice", permission="write", env_rule=FromRepoConfig())
    assert decision.allowed


FORCE = "/modelship deploy staging --force"


@pytest.mark.parametrize("permission", ["admin", "maintain", "write"])
def test_force_needs_admin_when_the_environment_lists_nobody(permission: str) -> None:
    rule = EnvRule(requires=("review_passed",))

    decision = authorize(command(FORCE), actor="bob", permission=permission, env_rule=rule, pr_state=READY)

    assert decision.allowed is (permission == "admin")
    if not decision.allowed:
        assert "`admin` permission" in decision.reason and "environments.staging.allowed" in decision.reason
        assert f"you have {permission} access" in decision.reason


def test_force_is_open_to_people_the_environment_lists_and_to_nobody_else_with_write() -> None:
    rule = EnvRule(allowed=("user:carol", "team:release"), requires=("review_passed",))

    carol = authorize(command(FORCE), actor="carol", permission="write", env_rule=rule, pr_state=READY)
    member = authorize(
        command(FORCE), actor="dan", permission="write", actor_teams={"release"}, env_rule=rule, pr_state=READY
    )
    outsider = authorize(command(FORCE), actor="erin", permission="admin", env_rule=rule, pr_state=READY)

    assert carol.allowed and member.allowed
    assert not outsider.allowed  # the allow-list still binds admins for any deploy to the environment


def test_a_plain_deploy_leaves_review_passed_to_the_deploy() -> None:
    rule = EnvRule(requires=("review_passed",))

    decision = authorize(
        command("/modelship deploy staging"), actor="bob", permission="write", env_rule=rule, pr_state=READY
    )

    assert decision.allowed  # the review verdict is judged by bot.deploy.gating, which has the record
