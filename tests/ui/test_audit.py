"""The audit page pages through a long log, newest first, keeping the reader's filter and repositories."""

from __future__ import annotations

import re
from typing import Any

from bot.chatops import store as chatops_store
from bot.ui.app import AUDIT_PAGE


def entry(repo: str, n: int, actor: str = "maya") -> chatops_store.AuditEntry:
    return chatops_store.AuditEntry(repo, 1, actor, n, "hold", f"/modelship hold #{n}", {}, "allowed", "held", True)


def shown(page: str) -> list[int]:
    return [int(n) for n in re.findall(r"/modelship hold #(\d+)", page)]


async def test_a_long_log_is_read_a_page_at_a_time_with_its_filter_kept(ui: Any) -> None:
    client, engine, _ = ui
    entries = [entry("acme/churn", n, actor="maya" if n % 3 else "rita") for n in range(2 * AUDIT_PAGE + 30)]
    entries += [entry("acme/secret", n) for n in range(1000, 1010)]  # a repository maya cannot read
    async with engine.begin() as conn:
        await chatops_store.record(conn, entries)
    mayas = [e.comment_id for e in reversed(entries) if e.repo == "acme/churn" and e.actor == "maya"]

    seen: list[int] = []
    url = "/ui/audit?actor=maya"
    while url:
        answer = await client.get(url)
        assert answer.status == 200
        page = await answer.text()
        rows = shown(page)
        assert 0 < len(rows) <= AUDIT_PAGE
        seen += rows
        older = re.search(r'href="(\?[^"]+)" rel="next"', page)
        url = "/ui/audit" + older.group(1).replace("&amp;", "&") if older else ""
        assert not older or "actor=maya" in url, "the next page keeps the filter"
    assert seen == mayas, "every one of maya's rows once, newest first, none of rita's, none of acme/secret"


async def test_a_page_asked_from_something_other_than_a_row_id_is_refused_saying_so(ui: Any) -> None:
    client, _, _ = ui
    answer = await client.get("/ui/audit", params={"before": "'; drop"})
    assert answer.status == 400 and "before" in await answer.text()
