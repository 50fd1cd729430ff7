"""What can be checked about the Helm charts without a helm binary: structure, schema, references."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from bot.deploy.manifest import load_values, merge_values, validate_values

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


def schema(chart: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHARTS / chart / "values.schema.json").read_text())
    return loaded


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
def test_the_schema_is_valid_and_every_ci_values_file_passes_it(chart: str) -> None:
    Draft202012Validator.check_schema(schema(chart))
    ci_files = sorted((CHARTS / chart / "ci").glob("*-values.yaml"))

    assert ci_files
    for path in ci_files:
        assert validate_values(path.read_text(), schema(chart), defaults(chart)) == [], path.name


def test_the_bot_chart_defaults_pass_the_schema_on_their_own() -> None:
    assert validate_values((CHARTS / "modelship/values.yaml").read_text(), schema("modelship")) == []


def test_model_server_defaults_alone_fail_naming_the_model_values_to_set() -> None:
    problems = validate_values((CHARTS / "model-server/values.yaml").read_text(), schema("model-server"))

    named = {p.split(":")[0] for p in problems}
    assert {"model.name", "model.repository", "model.revision", "model.path", "model.sha256"} <= named


@pytest.mark.parametrize(
    ("chart", "override", "expected"),
    [
        (
            "model-server",
            "securityContext:\n  allowPrivilegeEscalation: true\n",
            "securityContext.allowPrivilegeEscalation",
        ),
        (
            "model-server",
            "securityContext:\n  readOnlyRootFilesystem: false\n",
            "securityContext.readOnlyRootFilesystem",
        ),
        ("model-server", "model:\n  sha256: not-hex\n", "model.sha256: 'not-hex' does not match"),
        ("model-server", "model:\n  path: ../../etc/passwd\n", "model.path"),
        ("model-server", "model:\n  shaa256: typo\n", "model.shaa256: unknown key"),
        ("modelship", "replicaCount: 3\n", "replicaCount: 3 violates maximum 1"),
        ("modelship", "database:\n  type: postgresql\n", "database.postgresql.existingSecret"),
        ("modelship", "settings:\n  webhook_secret: hunter2\n", "settings"),
        ("modelship", "securityContext:\n  capabilities:\n    drop: [NET_RAW]\n", "securityContext.capabilities.drop"),
    ],
)
def test_unsafe_or_wrong_values_are_refused_with_a_message_naming_the_value(
    chart: str, override: str, expected: str
) -> None:
    base = merge_values(defaults(chart), load_values(_ci_values(chart)))

    problems = validate_values(override, schema(chart), base)

    assert any(expected in p for p in problems), problems


def _ci_values(chart: str) -> str:
    name = {"model-server": "iris-values.yaml", "modelship": "sqlite-values.yaml"}[chart]
    return (CHARTS / chart / "ci" / name).read_text()


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


@pytest.mark.parametrize("chart", NAMES)
def test_template_actions_are_balanced(chart: str) -> None:
    for path in (CHARTS / chart / "templates").iterdir():
        text = path.read_text()
        actions = re.findall(r"\{\{-?\s*(.*?)\s*-?\}\}", text, flags=re.S)
        opened = sum(1 for a in actions if re.match(r"(if|range|with|define)\b", a))
        closed = sum(1 for a in actions if a == "end")
        assert text.count("{{") == text.count("}}"), path.name
        assert opened == closed, f"{path.name}: {opened} blocks opened, {closed} closed"


@pytest.mark.parametrize("chart", NAMES)
def test_pods_get_probes_scrape_annotations_and_the_restricted_security_context(chart: str) -> None:
    values = defaults(chart)
    deployment = (CHARTS / chart / "templates/deployment.yaml").read_text()

    assert (values["probes"]["liveness"]["path"], values["probes"]["readiness"]["path"]) == PROBES[chart]
    assert "livenessProbe:" in deployment and "readinessProbe:" in deployment
    assert 'prometheus.io/scrape: "true"' in deployment
    containers = len(re.findall(r"^\s+image: ", deployment, re.M))
    assert containers >= 1
    assert deployment.count("toYaml .Values.securityContext") == containers  # every container hardened
    ctx = values["securityContext"]
    assert ctx["runAsNonRoot"] and ctx["readOnlyRootFilesystem"] and not ctx["allowPrivilegeEscalation"]
    assert ctx["capabilities"]["drop"] == ["ALL"] and ctx["seccompProfile"]["type"] == "RuntimeDefault"
    assert values["podSecurityContext"]["seccompProfile"]["type"] == "RuntimeDefault"


def test_non_templated_yaml_parses() -> None:
    files = [
        *CHARTS.glob("*/Chart.yaml"),
        *CHARTS.glob("*/values.yaml"),
        *CHARTS.glob("*/ci/*.yaml"),
        *(CHARTS.parent / "docs/examples").glob("*.yaml"),
    ]
    for path in files:
        assert list(yaml.safe_load_all(path.read_text())), path
