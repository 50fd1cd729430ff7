"""The charts' structure and conventions; what Helm itself says about them is in test_helm.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.deploy.manifest import load_values

CHARTS = Path(__file__).parents[2] / "charts"
NAMES = ["model-server", "modelship"]
STANDARD_LABELS = [
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
]
REQUIRED_TEMPLATES = {
    "model-server": [
        "_helpers.tpl",
        "deployment.yaml",
        "service.yaml",
        "serviceaccount.yaml",
        "hpa.yaml",
        "servicemonitor.yaml",
        "pdb.yaml",
        "NOTES.txt",
    ],
    "modelship": [
        "_helpers.tpl",
        "deployment.yaml",
        "service.yaml",
        "serviceaccount.yaml",
        "configmap.yaml",
        "pvc.yaml",
        "ingress.yaml",
        "NOTES.txt",
    ],
}
PROBES = {"model-server": ("/v2/health/live", "/v2/health/ready"), "modelship": ("/healthz", "/readyz")}


def defaults(chart: str) -> dict[str, Any]:
    return load_values((CHARTS / chart / "values.yaml").read_text())


def manifests(chart: str) -> list[Path]:
    return sorted(p for p in (CHARTS / chart / "templates").iterdir() if p.suffix == ".yaml")


def leaf_paths(data: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        paths.add(path)
        if isinstance(value, dict):
            paths |= leaf_paths(value, path)
    return paths


@pytest.mark.parametrize("chart", NAMES)
def test_chart_yaml_follows_helm_v2_conventions(chart: str) -> None:
    meta = yaml.safe_load((CHARTS / chart / "Chart.yaml").read_text())

    assert meta["apiVersion"] == "v2"
    assert meta["name"] == chart
    assert meta["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert isinstance(meta["appVersion"], str) and meta["description"]


@pytest.mark.parametrize("chart", NAMES)
def test_the_chart_has_every_template_notes_and_a_readme_with_the_values_table(chart: str) -> None:
    present = {p.name for p in (CHARTS / chart / "templates").iterdir()}
    assert set(REQUIRED_TEMPLATES[chart]) <= present
    readme = (CHARTS / chart / "README.md").read_text()
    missing = [p for p in leaf_paths(defaults(chart)) if f"| `{p}` |" not in readme and p.count(".") < 3]
    undocumented = [p for p in missing if not any(m.startswith(p + ".") for m in leaf_paths(defaults(chart)))]
    assert undocumented == [], f"README values table lacks {undocumented}"


@pytest.mark.parametrize("chart", NAMES)
def test_templates_reference_only_values_that_exist(chart: str) -> None:
    known = leaf_paths(defaults(chart))
    templates = (CHARTS / chart / "templates").iterdir()
    missing = {
        f"{t.name}: .Values.{ref}"
        for t in templates
        for ref in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", t.read_text())
        if ref.rstrip(".") not in known
    }
    assert missing == set()


def test_model_fields_used_through_a_variable_exist() -> None:
    text = (CHARTS / "model-server/templates/deployment.yaml").read_text()
    used = set(re.findall(r"\$model\.([A-Za-z0-9_]+)", text))

    assert used and used <= set(defaults("model-server")["model"])


@pytest.mark.parametrize("chart", NAMES)
def test_every_top_level_value_is_used_by_some_template(chart: str) -> None:
    text = "".join(p.read_text() for p in (CHARTS / chart / "templates").iterdir())
    unused = [k for k in defaults(chart) if f".Values.{k}" not in text]
    assert unused == []


@pytest.mark.parametrize("chart", NAMES)
def test_standard_labels_are_defined_once_and_used_by_every_manifest(chart: str) -> None:
    helpers = (CHARTS / chart / "templates/_helpers.tpl").read_text()
    labels = helpers.split(f'define "{chart}.labels"')[1].split("{{- end }}")[0]
    labels += helpers.split(f'define "{chart}.selectorLabels"')[1].split("{{- end }}")[0]

    assert all(f"{label}:" in labels for label in STANDARD_LABELS)
    for manifest in manifests(chart):
        assert f'include "{chart}.labels"' in manifest.read_text(), manifest.name


def test_non_templated_yaml_parses() -> None:
    files = [
        *CHARTS.glob("*/Chart.yaml"),
        *CHARTS.glob("*/values.yaml"),
        *CHARTS.glob("*/ci/*.yaml"),
        *(CHARTS.parent / "docs/examples").glob("*.yaml"),
    ]
    for path in files:
        assert list(yaml.safe_load_all(path.read_text())), path
