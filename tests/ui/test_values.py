"""The values diff's core: two values files compared line by line and key by key, whatever a person (or an
attacker) put in them; and the reader's cache, bounded, against devhub's contents API."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from bot.ui.values import MAX_KEYS, MISSING, ValuesFile, ValuesReader, compare, flatten
from devkit.devhub import RunningDevHub
from tests.devkit.devhub.helpers import REPO, client, install_app

OLD = """\
# staging: owned by the platform team
replicaCount: 1
model:
  name: churn
  sha256: aaa
  pinned: false
resources: {limits: {memory: 1Gi}}
"""
NEW = """\
# staging: owned by the platform team
replicaCount: 2
model:
  name: churn
  sha256: bbb
  pinned: null
  pinReason: rollback
resources: {limits: {memory: 1Gi}}
"""


def test_lines_and_keys_that_changed() -> None:
    done = compare(ValuesFile("a", OLD), ValuesFile("b", NEW))
    assert [(line.kind, line.text) for line in done.lines if line.kind in ("add", "del")] == [
        ("del", "-replicaCount: 1"),
        ("add", "+replicaCount: 2"),
        ("del", "-  sha256: aaa"),
        ("del", "-  pinned: false"),
        ("add", "+  sha256: bbb"),
        ("add", "+  pinned: null"),
        ("add", "+  pinReason: rollback"),
    ]
    assert [k for k, _, _ in done.keys] == ["model.pinReason", "model.pinned", "model.sha256", "replicaCount"]
    assert dict((k, (a, b)) for k, a, b in done.keys)["model.pinReason"] == (MISSING, "rollback")
    assert done.note == ""


def test_equal_files_have_no_diff() -> None:
    done = compare(ValuesFile("a", OLD), ValuesFile("b", OLD))
    assert done.readable and done.lines == [] and done.keys == []


def test_an_alias_bomb_is_not_expanded() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )  # 10^9 leaves if flattened
    started = time.perf_counter()
    done = compare(ValuesFile("a", OLD), ValuesFile("b", bomb))
    assert time.perf_counter() - started < 2
    assert done.keys == [] and f"more than {MAX_KEYS:,} keys" in done.note and done.lines  # the lines still show


def test_a_file_that_is_not_yaml_gets_the_line_diff_only() -> None:
    done = compare(ValuesFile("a", OLD), ValuesFile("b", "model: [unclosed\n"))
    assert done.keys == [] and "not valid YAML" in done.note and any(line.kind == "add" for line in done.lines)


def test_flatten_names_nested_keys_and_list_items() -> None:
    assert flatten({"a": {"b": [1, {"c": None}]}, "d": {}}) == {"a.b[0]": 1, "a.b[1].c": None, "d": {}}
    assert flatten("just text") == {"(document)": "just text"}


async def test_the_reader_keeps_what_it_read_within_its_bound(devhub: RunningDevHub) -> None:
    hub = devhub.hub
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        gh = client(devhub, session, installed.token)
        first = await hub.push(REPO, "main", {"values.yaml": "a: 1\n"})
        second = await hub.push(REPO, "main", {"values.yaml": "a: 2\n", "big.yaml": b"#" * (2 * 1024 * 1024)})

        async def client_for(repo: str) -> Any:
            return gh if repo == REPO else None

        reader = ValuesReader(client_for, max_entries=1)

        def reads() -> int:
            return sum(1 for r in hub.faults.log if r.path.endswith("/contents/values.yaml"))

        assert (await reader.read(REPO, first, "values.yaml")).text == "a: 1\n"
        assert (await reader.read(REPO, first, "values.yaml")).text == "a: 1\n"
        assert reads() == 1  # kept
        assert (await reader.read(REPO, second, "values.yaml")).text == "a: 2\n"
        assert (await reader.read(REPO, first, "values.yaml")).text == "a: 1\n"
        assert reads() == 3  # one entry only: the first was dropped for the second
        small = ValuesReader(client_for, max_chars=8)  # room for one of the two five-character files
        await small.read(REPO, first, "values.yaml")
        await small.read(REPO, second, "values.yaml")
        await small.read(REPO, second, "values.yaml")
        await small.read(REPO, first, "values.yaml")
        assert reads() == 6  # the second file pushed the first out, by size
        missing = await reader.read(REPO, second, "nope.yaml")
        assert missing.text is None and f"nope.yaml is not in {REPO} at {second[:7]}" in missing.problem
        unknown = await reader.read(REPO, "0" * 40, "values.yaml")
        assert unknown.text is None and "is not in" in unknown.problem  # GitHub: "No commit found for the ref"
        big = await reader.read(REPO, second, "big.yaml")
        assert big.text is None and "over 1 MB" in big.problem
        assert "is not a commit id" in (await reader.read(REPO, "main", "values.yaml")).problem
        assert "not installed" in (await reader.read("other/repo", first, "values.yaml")).problem
