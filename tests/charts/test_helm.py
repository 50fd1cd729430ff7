"""Both charts as Helm itself sees them: every ci/*.yaml lints clean (strict) and renders with Helm's
own Go SDK, every rendered object validates against Kubernetes' own schemas, bad values are refused
by Helm with a message naming the value."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft202012Validator

from bot.deploy.helm import HelmRefusal, Rendered, render_chart_sync

CHARTS = Path(__file__).parents[2] / "charts"
CI_FILES = sorted(CHARTS.glob("*/ci/*.yaml"))
# The oldest Kubernetes the project supports here and the newest kubernetes-validate carries.
KUBERNETES = ["1.33.0", kubernetes_validate.utils.latest_version()]
# Custom resources Kubernetes has no schema for; each is checked by hand below.
CRDS = {"ServiceMonitor"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def ci_id(path: Path) -> str:
    return f"{path.parts[-3]}/{path.name}"


def render(chart: str, values: dict[str, Any] | str) -> Rendered | HelmRefusal:
    return render_chart_sync(CHARTS / chart, values, release="rel", namespace="ml")


def rendered(path: Path) -> Rendered:
    result = render(path.parts[-3], path.read_text())
    assert isinstance(result, Rendered), result
    return result


def ci_values(chart: str, name: str) -> dict[str, Any]:
    return helm.values_from_yaml((CHARTS / chart / "ci" / name).read_text())


@pytest.mark.parametrize("path", CI_FILES, ids=ci_id)
def test_every_ci_values_file_lints_clean_with_helm_strict(path: Path) -> None:
    report = helm.lint(path.parents[1], helm.values_from_yaml(path.read_text()), strict=True)

    assert report["errors"] == []
    # Only Helm's "info" level remains (e.g. "icon is recommended"); strict fails on warnings.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("path", CI_FILES, ids=ci_id)
@pytest.mark.parametrize("version", KUBERNETES)
def test_every_rendered_object_validates_against_kubernetes_own_schemas(path: Path, version: str) -> None:
    documents = rendered(path).documents()

    assert {d["kind"] for d in documents} >= {"Deployment", "Service"}
    for doc in documents:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in CRDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} against Kubernetes {version}: {'.'.join(map(str, exc.path))}: {exc.message}")


@pytest.mark.parametrize("path", CI_FILES, ids=ci_id)
def test_names_and_labels_are_ones_the_api_server_accepts(path: Path) -> None:
    # The JSON schemas do not carry these rules; the API server enforces them.
    for doc in rendered(path).documents():
        metadatas = [doc["metadata"], doc.get("spec", {}).get("template", {}).get("metadata", {})]
        assert DNS_SUBDOMAIN.match(doc["metadata"]["name"]) and len(doc["metadata"]["name"]) <= 63, doc["metadata"]
        for metadata in metadatas:
            for key, value in (metadata.get("labels") or {}).items():
                assert LABEL_VALUE.match(value) and len(value) <= 63, f"{doc['kind']}: label {key}={value!r}"


def test_kubernetes_validate_refuses_what_the_api_server_would() -> None:
    # The validator is not vacuous: a typo'd field and a wrong type in a rendered Deployment fail.
    deployment = next(
        d for d in rendered(CHARTS / "model-server/ci/iris-values.yaml").documents() if d["kind"] == "Deployment"
    )
    typo = json.loads(json.dumps(deployment))
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    wrong = json.loads(json.dumps(deployment))
    wrong["spec"]["replicas"] = "two"

    for bad in (typo, wrong):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, KUBERNETES[0], strict=True)


def test_the_service_monitor_selects_the_service_and_scrapes_its_port() -> None:
    # ServiceMonitor is a Prometheus Operator CRD with no Kubernetes schema: check what matters by hand.
    docs = rendered(CHARTS / "model-server/ci/full-values.yaml").documents()
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    service = next(d for d in docs if d["kind"] == "Service")

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"


@pytest.mark.parametrize("path", CI_FILES, ids=ci_id)
def test_every_container_is_hardened_probed_and_scraped_as_configured(path: Path) -> None:
    values = helm.values_from_yaml(path.read_text())
    deployment = next(d for d in rendered(path).documents() if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]
    containers = pod["spec"]["containers"] + pod["spec"].get("initContainers", [])

    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in containers:
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] and not ctx["allowPrivilegeEscalation"], container["name"]
        assert ctx["capabilities"]["drop"] == ["ALL"], container["name"]
    main = pod["spec"]["containers"][0]
    assert main["livenessProbe"]["httpGet"]["port"] == main["readinessProbe"]["httpGet"]["port"] == "http"
    annotations = pod["metadata"].get("annotations", {})
    assert annotations is not None, "an empty `annotations:` renders as null"
    scraped = annotations.get("prometheus.io/scrape") == "true"
    assert scraped == values.get("metrics", {}).get("scrapeAnnotations", True)


def test_the_git_source_fetches_in_the_serving_container_with_the_token_as_a_file() -> None:
    """No init container, no third-party image: the product image fetches model.path at model.revision."""
    docs = rendered(CHARTS / "model-server/ci/git-values.yaml").documents()
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in server["env"]}

    assert "initContainers" not in pod
    assert server["image"] == "registry.example:5000/modelship/modelship:0.1.0"
    assert "--git=https://ghe.example/acme/churn-model.git" in server["args"]
    assert "--git-revision=0123456789abcdef0123456789abcdef01234567" in server["args"]
    assert "--git-path=models/churn.onnx" in server["args"] and "--models-dir=/models" in server["args"]
    assert env["MODELSHIP_GIT_TOKEN_FILE"] == "/secrets/git/token"
    assert {"name": "model-token", "mountPath": "/secrets/git", "readOnly": True} in server["volumeMounts"]
    token = next(v for v in pod["volumes"] if v["name"] == "model-token")
    assert token["secret"] == {"secretName": "churn-model-read-token", "items": [{"key": "token", "path": "token"}]}


def test_the_artifact_can_be_mounted_as_an_image_volume_pulled_by_digest() -> None:
    """The kubelet pulls model.artifact by digest; the server serves the one file in it, checking its sha256."""
    values = ci_values("model-server", "image-volume-values.yaml")
    pod = next(
        d
        for d in rendered(CHARTS / "model-server/ci/image-volume-values.yaml").documents()
        if d["kind"] == "Deployment"
    )
    spec = pod["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    volume = next(v for v in spec["volumes"] if v["name"] == "artifact")

    assert volume["image"] == {"reference": values["model"]["artifact"], "pullPolicy": "IfNotPresent"}
    assert "@sha256:" in volume["image"]["reference"]
    assert {"name": "artifact", "mountPath": "/artifact", "readOnly": True} in server["volumeMounts"]
    assert "--model=/artifact/model" in server["args"] and f"--sha256={values['model']['sha256']}" in server["args"]
    assert not any(a.startswith("--artifact=") for a in server["args"])

    values["model"]["artifact"] = ""
    refused = render("model-server", values)
    assert isinstance(refused, HelmRefusal) and "modelSource.imageVolume needs model.artifact" in str(refused)


def test_the_git_source_defaults_to_githubs_clone_url_and_refuses_credentials_in_the_url() -> None:
    values = ci_values("model-server", "git-values.yaml")
    values["modelSource"] = {}
    docs = render("model-server", values)
    assert isinstance(docs, Rendered), docs
    server = next(d for d in docs.documents() if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--git=https://github.com/acme/churn-model.git" in server[0]["args"]

    values["modelSource"] = {"gitUrl": "https://x-access-token:ghs_secret@github.com/acme/churn-model.git"}
    refused = render("model-server", values)
    assert isinstance(refused, HelmRefusal) and refused.values == ("modelSource.gitUrl",), refused


def test_the_bot_chart_renders_from_its_defaults_alone() -> None:
    result = render("modelship", {})

    assert isinstance(result, Rendered), result
    assert {d["kind"] for d in result.documents()} == {
        "ConfigMap",
        "Deployment",
        "PersistentVolumeClaim",
        "Service",
        "ServiceAccount",
        "Namespace",  # the Kubernetes sandbox is the default: its namespace, Role and NetworkPolicy
        "Role",
        "RoleBinding",
        "NetworkPolicy",
    }


def test_model_server_defaults_lint_clean_and_run_nothing_until_a_model_is_pinned() -> None:
    """`helm lint charts/model-server` with the chart's own defaults passes; no workload renders then."""
    assert helm.lint(str(CHARTS / "model-server"), {}, strict=True)["errors"] == []
    result = render("model-server", {})

    assert not isinstance(result, HelmRefusal), result
    assert {doc["kind"] for doc in result.documents()} <= {"ServiceAccount"}
    assert "No model is pinned yet" in result.manifests["model-server/templates/NOTES.txt"]


def test_a_half_written_pin_is_refused_naming_every_model_value_to_set() -> None:
    result = render("model-server", {"model": {"sha256": "a" * 64}})

    assert isinstance(result, HelmRefusal)
    assert {"model.name", "model.repository", "model.revision", "model.path"} <= set(result.values)


def _merge(base: dict[str, Any], override: str) -> dict[str, Any]:
    merged = json.loads(json.dumps(base))
    for key, value in yaml.safe_load(override).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


@pytest.mark.parametrize(
    ("chart", "override", "named", "quoted"),
    [
        ("model-server", "model: {path: ../../etc/passwd}", "model.path", "'../../etc/passwd'"),
        ("model-server", "model: {path: models/../../secrets.onnx}", "model.path", "'models/../../secrets.onnx'"),
        ("model-server", "model: {path: /etc/passwd}", "model.path", "'/etc/passwd'"),
        ("model-server", "model: {path: 'models/a b.onnx'}", "model.path", "'models/a b.onnx'"),
        ("model-server", "resources: {limits: {memory: 1 Gb}}", "resources.limits.memory", "'1 Gb'"),
        ("model-server", "resources: {requests: {cpu: -1}}", "resources.requests.cpu", "got -1"),
        ("model-server", "model: {sha256: not-hex}", "model.sha256", "'not-hex'"),
        ("model-server", "model: {shaa256: typo}", "model", "'shaa256' not allowed"),
        (
            "model-server",
            "securityContext: {allowPrivilegeEscalation: true}",
            "securityContext.allowPrivilegeEscalation",
            "",
        ),
        (
            "model-server",
            "securityContext: {readOnlyRootFilesystem: false}",
            "securityContext.readOnlyRootFilesystem",
            "",
        ),
        ("modelship", "replicaCount: 3", "replicaCount", "maximum: got 3, want 1"),
        ("modelship", "database: {type: postgresql}", "database.postgresql.existingSecret", "minLength"),
        ("modelship", "securityContext: {capabilities: {drop: [NET_RAW]}}", "securityContext.capabilities.drop", ""),
        ("modelship", "resources: {limits: {memory: lots}}", "resources.limits.memory", "'lots'"),
    ],
)
def test_helm_refuses_bad_values_with_a_message_naming_the_value(
    chart: str, override: str, named: str, quoted: str
) -> None:
    base = ci_values(chart, {"model-server": "iris-values.yaml", "modelship": "sqlite-values.yaml"}[chart])

    result = render(chart, _merge(base, override))

    assert isinstance(result, HelmRefusal), f"Helm rendered {override!r}"
    assert named in result.values, result
    assert quoted in result.message, result


def test_secrets_in_the_bot_settings_are_refused_by_helm_naming_the_key() -> None:
    result = render("modelship", _merge(ci_values("modelship", "sqlite-values.yaml"), "settings: {webhook_secret: x}"))

    assert isinstance(result, HelmRefusal) and "'webhook_secret'" in result.message


@pytest.mark.parametrize("path", ["models/iris.onnx", "iris.onnx", "..hidden/m.onnx", ".cache/m.onnx", "a/./b.onnx"])
def test_relative_paths_without_dotdot_segments_are_accepted(path: str) -> None:
    values = _merge(ci_values("model-server", "iris-values.yaml"), f"model: {{path: '{path}'}}")

    assert isinstance(render("model-server", values), Rendered)


def test_a_lookahead_pattern_is_refused_by_helm_though_python_jsonschema_accepts_it(tmp_path: Path) -> None:
    # What the model-server chart shipped before: Go's RE2 has no lookahead, so Helm refused every
    # render of the chart with any values, while the Python jsonschema tests passed.
    chart = tmp_path / "model-server"
    shutil.copytree(CHARTS / "model-server", chart)
    schema = json.loads((chart / "values.schema.json").read_text())
    schema["properties"]["model"]["properties"]["path"]["pattern"] = r"^(?!/)(?!(.*/)?\.\.(/|$))[^\s]+$"
    (chart / "values.schema.json").write_text(json.dumps(schema))
    values = ci_values("model-server", "iris-values.yaml")

    report = helm.lint(chart, values, strict=True)
    result = render_chart_sync(chart, values)

    assert any("(?!" in e for e in report["errors"]), report
    assert isinstance(result, HelmRefusal) and "invalid or unsupported Perl syntax" in result.message
    with helm.Chart.load(chart) as loaded:
        merged = loaded.merge_values(values)
    Draft202012Validator.check_schema(schema)
    assert list(Draft202012Validator(schema).iter_errors(merged)) == []


def test_helm_loads_lints_and_renders_without_any_network() -> None:
    # A network namespace of its own has no interfaces: nothing can be fetched, not even DNS.
    script = (
        "import socket, helm_python as helm\n"
        "try:\n socket.create_connection(('1.1.1.1', 443), timeout=2); print('NETWORK')\n"
        "except OSError: pass\n"
        f"report = helm.lint({str(CHARTS / 'modelship')!r}, strict=True)\n"
        f"out = helm.Chart.load({str(CHARTS / 'modelship')!r}).render({{}}, name='rel')\n"
        "print(report['errors'], sorted(out)[0])\n"
    )
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "modelship/templates/NOTES.txt"]
