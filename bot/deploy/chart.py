"""The model-server chart the deploy and the guard write values for: loaded once, from MODELSHIP_CHARTS_DIR.

``path`` is what Helm renders (bot.deploy.helm) before a deploy commits or the guard proposes a rollback:
Helm alone judges a values file (its schema with Go's regular expressions, its templates).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import helm_python as helm

CHART = "model-server"


class ChartError(Exception):
    """The chart cannot be read; the message names the setting and the file."""


@dataclass(frozen=True)
class ModelServerChart:
    path: Path

    @classmethod
    def load(cls, charts_dir: Path) -> ModelServerChart:
        """The chart, once Helm has loaded it (a chart Helm cannot load fails start-up, not every deploy)."""
        chart = charts_dir / CHART
        try:
            with helm.Chart.load(chart):
                pass
        except helm.HelmError as exc:
            raise ChartError(f"MODELSHIP_CHARTS_DIR: Helm cannot load the {CHART} chart in {chart}: {exc}") from exc
        return cls(chart)
