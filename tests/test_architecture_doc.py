"""docs/architecture.md stays true: every dotted name it mentions (`bot.x.y`, `contract.z`, …) imports."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
NAME = re.compile(r"\b((?:bot|contract|pipelines|model_server|devkit)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def names() -> list[str]:
    return sorted(set(NAME.findall(DOC.read_text())))


def resolves(dotted: str) -> bool:
    """A module, or an attribute (class, function, constant, method) reached from the longest module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(target, attr):
                return False
            target = getattr(target, attr)
        return True
    return False


def test_the_page_names_modules_at_all() -> None:
    assert len(names()) > 20  # the regular expression still finds the names the page is made of


@pytest.mark.parametrize("dotted", names())
def test_every_name_the_architecture_page_mentions_exists(dotted: str) -> None:
    assert resolves(dotted), f"docs/architecture.md names {dotted}, which does not import"
