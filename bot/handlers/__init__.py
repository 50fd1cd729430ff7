"""gidgethub routing: one module per feature registers thin handlers on its own Router."""

from __future__ import annotations

from gidgethub import routing

from bot.handlers import deploy, deploy_repo, installation, issue_comment, pull_request

router = routing.Router(
    installation.router, pull_request.router, issue_comment.router, deploy.router, deploy_repo.router
)


def handles(event: str, payload: dict[str, object]) -> bool:
    """True when some handler would run for this event (the intake records the rest as unhandled)."""
    from gidgethub.sansio import Event

    return bool(router.fetch(Event(payload, event=event, delivery_id="-")))
