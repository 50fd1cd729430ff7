"""The model-server chart the deploy and the guard write values for: loaded once, from MODELSHIP_CHARTS_DIR.

``path`` is what Helm renders (bot.deploy.helm) before a deploy commits; ``schema`` and ``defaults``
(values.schema.json, values.yaml) are what a rollback's pinned values are checked against
(bot.deploy.manifest.pin).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.deploy.manifest import ManifestError, load_values

CHART = "model-server"


class ChartError(Exception):
    """The chart cannot be read; the message names the setting and the file."""


@dataclass(frozen=True)
class ModelServerChart:
    path: Path
    schema: dict[str, Any]
    defaults: dict[str, Any]

    @classmethod
    def load(cls, charts_dir: Path) -> ModelServerChart:
        chart = charts_dir / CHART
        try:
            schema = json.loads((chart / "values.schema.json").read_text())
            defaults = load_values((chart / "values.yaml").read_text())
        except (OSError, ValueError, ManifestError) as exc:
            raise ChartError(f"MODELSHIP_CHARTS_DIR: cannot read the {CHART} chart in {chart}: {exc}") from exc
        return cls(chart, schema, defaults)
