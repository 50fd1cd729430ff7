"""Chat-ops: commands in PR comments. Pure cores: parser, registry, authz, trust, rate limit, replies."""

from bot.chatops.authz import Decision, EnvironmentRule, EnvRule, PrState, authorize
from bot.chatops.commands import COMMANDS, PREFIX, CommandSpec
from bot.chatops.parser import ParsedCommand, ParseError, parse_comment

__all__ = [
    "COMMANDS",
    "PREFIX",
    "CommandSpec",
    "Decision",
    "EnvRule",
    "EnvironmentRule",
    "ParseError",
    "ParsedCommand",
    "PrState",
    "authorize",
    "parse_comment",
]
