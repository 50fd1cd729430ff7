"""Render a chart through Helm itself before anything is committed.

Python's jsonschema is not Helm. Helm checks ``values.schema.json`` with Go's RE2 regular
expressions (a lookahead that Python accepts makes Helm refuse every render), its YAML parser is
not ruamel's, and a template's ``required``/``fail`` can refuse values that pass the schema. What
Argo CD or Flux will do with a values file is only known by asking Helm, so the deploy renders the
chart with the new values through Helm's own Go SDK (the ``helm-python-sdk`` wheel, offline, no
helm binary) and commits nothing when Helm refuses, quoting Helm's message.

The SDK is a blocking C library: ``render_chart`` runs it in a worker thread. Callers already on
a worker thread (the deploy repository's edit callbacks) use ``render_chart_sync``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from bot.deploy.manifest import ManifestError

# libyaml's loader when PyYAML has it: the pure-Python one takes most of a render's time.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# "- at '/model/path': '../x' does not match pattern ..." — how Helm's schema errors name a value.
_AT = re.compile(r"at '(/[^']*)'")


@dataclass(frozen=True)
class Rendered:
    """What Helm rendered: template path (``<chart>/templates/x.yaml``) -> manifest text."""

    manifests: Mapping[str, str]

    def documents(self) -> list[dict[str, Any]]:
        """Every Kubernetes object rendered (NOTES.txt and empty documents left out)."""
        return [
            doc
            for name, text in sorted(self.manifests.items())
            if not name.endswith("NOTES.txt")
            for doc in yaml.load_all(text, Loader=_LOADER)
            if doc
        ]


@dataclass(frozen=True)
class HelmRefusal:
    """Helm refused the values: ``message`` is Helm's own text; ``values`` the value paths it names."""

    message: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message


class HelmRefused(ManifestError):
    """A values file Helm refuses to render; raised from an edit so that nothing is committed."""

    def __init__(self, refusal: HelmRefusal) -> None:
        super().__init__([refusal.message])
        self.refusal = refusal


def render_chart_sync(
    chart_dir: Path,
    values: Mapping[str, Any] | str,
    *,
    release: str | None = None,
    namespace: str = "default",
) -> Rendered | HelmRefusal:
    """Render ``chart_dir`` with ``values`` (a mapping, or values-file text parsed by Helm's own YAML
    parser) coalesced over the chart's defaults, exactly as ``helm template`` would.

    Values Helm refuses (schema, YAML, a template's ``required``/``fail``) come back as a
    HelmRefusal. A chart that cannot be loaded is the operator's problem, not the values': it
    raises ``helm_python.HelmError``.
    """
    with helm.Chart.load(chart_dir) as chart:
        try:
            data = helm.values_from_yaml(values) if isinstance(values, str) else dict(values)
            manifests = chart.render(data, name=release or chart.name, namespace=namespace)
        except (helm.HelmValuesError, helm.HelmRenderError) as exc:
            return refusal(exc.detail)
    rendered = Rendered(manifests)
    for name, text in manifests.items():
        if name.endswith("NOTES.txt"):
            continue
        try:
            list(yaml.load_all(text, Loader=_LOADER))
        except yaml.YAMLError as exc:  # what `helm install` would refuse after rendering
            return HelmRefusal(f"{name}: the rendered manifest is not valid YAML: {' '.join(str(exc).split())}")
    return rendered


async def render_chart(
    chart_dir: Path,
    values: Mapping[str, Any] | str,
    *,
    release: str | None = None,
    namespace: str = "default",
) -> Rendered | HelmRefusal:
    """``render_chart_sync`` off the event loop (Helm's SDK blocks)."""
    return await asyncio.to_thread(render_chart_sync, chart_dir, values, release=release, namespace=namespace)


def check_values(chart_dir: Path, text: str, *, release: str | None = None) -> None:
    """Raise HelmRefused when Helm refuses to render ``chart_dir`` with this values file."""
    result = render_chart_sync(chart_dir, text, release=release)
    if isinstance(result, HelmRefusal):
        raise HelmRefused(result)


def refusal(message: str) -> HelmRefusal:
    """Helm's message, trimmed, with the value paths it names as dotted paths (``model.path``)."""
    named = dict.fromkeys(_dotted(m) for m in _AT.findall(message))
    return HelmRefusal(message.strip(), tuple(n for n in named if n))


def _dotted(pointer: str) -> str:
    out = ""
    for part in pointer.strip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out
