"""Server-side PromQL templates (config/promql/*.yml): a repository picks one by name, never writes PromQL.

Placeholders are ``{model}``, ``{version}``, ``{env}``, ``{window}`` and any the template declares
under ``defaults`` (e.g. ``{baseline}``). Values are escaped as PromQL string literals and durations
are validated, so a model name from a repository cannot change the query's shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

IDENTITY = ("model", "version", "env")
DURATION_RE = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
# Matches only placeholders: PromQL's own braces always hold a '=', '~' or ',' (selectors) or are empty.
PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")


class TemplateError(Exception):
    """A template file or a rendering request is invalid; the message names the file or the key."""


@dataclass(frozen=True)
class QueryTemplate:
    name: str
    query: str
    description: str = ""
    unit: str = ""
    defaults: Mapping[str, str] = field(default_factory=dict)

    @property
    def placeholders(self) -> set[str]:
        return set(PLACEHOLDER_RE.findall(self.query))

    def render(self, *, model: str, version: str, env: str, window: str, **extra: str) -> str:
        undeclared = extra.keys() - self.defaults.keys()
        if undeclared:
            raise TemplateError(f"template {self.name!r} has no placeholder {', '.join(sorted(undeclared))}")
        values = {**self.defaults, **extra, "window": window}
        for key, value in values.items():
            if key in ("window", *self.defaults) and not DURATION_RE.match(value):
                raise TemplateError(f"{key} {value!r} of template {self.name!r} is not a duration like 30s, 5m or 1h")
        values |= {"model": _literal(model), "version": _literal(version), "env": _literal(env)}
        missing = self.placeholders - values.keys()
        if missing:
            raise TemplateError(f"template {self.name!r} needs a value for {', '.join(sorted(missing))}")
        return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], self.query).strip()


def _literal(value: str) -> str:
    """The inside of a double-quoted PromQL string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def load_templates(directory: Path) -> dict[str, QueryTemplate]:
    templates: dict[str, QueryTemplate] = {}
    for path in sorted(directory.glob("*.yml")):
        template = parse_template(path.read_text(), source=str(path))
        if template.name in templates:
            raise TemplateError(f"{path}: template name {template.name!r} is defined twice")
        templates[template.name] = template
    if not templates:
        raise TemplateError(f"no PromQL templates (*.yml) in {directory}")
    return templates


def parse_template(text: str, *, source: str = "<template>") -> QueryTemplate:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: must be a mapping with name, description and query")
    name, query = data.get("name"), data.get("query")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise TemplateError(f"{source}: 'name' must be snake_case, got {name!r}")
    if not isinstance(query, str) or not query.strip():
        raise TemplateError(f"{source}: 'query' must be a non-empty PromQL string")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or not all(isinstance(v, str) for v in defaults.values()):
        raise TemplateError(f"{source}: 'defaults' must map placeholder names to durations")
    template = QueryTemplate(
        name=name,
        query=query,
        description=str(data.get("description", "")),
        unit=str(data.get("unit", "")),
        defaults={str(k): v for k, v in defaults.items()},
    )
    unknown = template.placeholders - {*IDENTITY, "window", *template.defaults}
    if unknown:
        raise TemplateError(f"{source}: unknown placeholders {', '.join(sorted(unknown))}; declare them in defaults")
    return template
