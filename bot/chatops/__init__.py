"""Chat-ops: commands in PR comments. Pure cores: parser, registry, authz, trust, rate limit, replies."""

from bot.chatops.authz import Decision, EnvironmentRule, EnvRule, PrState, authorize
from bot.chatops.commands import COMMANDS, PREFIX, CommandSpec
from bot.chatops.dispatch import Facts, Reply, Run, decide
from bot.chatops.filters import ignore_reason
from bot.chatops.parser import ParsedCommand, ParseError, parse_comment
from bot.chatops.ratelimit import RateLimiter, Verdict

__all__ = [
    "COMMANDS",
    "PREFIX",
    "CommandSpec",
    "Decision",
    "EnvRule",
    "EnvironmentRule",
    "Facts",
    "ParseError",
    "ParsedCommand",
    "PrState",
    "RateLimiter",
    "Reply",
    "Run",
    "Verdict",
    "authorize",
    "decide",
    "ignore_reason",
    "parse_comment",
]
