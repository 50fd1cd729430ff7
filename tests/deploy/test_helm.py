"""bot.deploy.helm: rendering through Helm's own SDK, and what a refusal carries."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import bot.deploy.helm as helm_module
from bot.deploy.helm import HelmRefusal, HelmRefused, Rendered, check_values, render_chart, render_chart_sync
from bot.deploy.manifest import ManifestError

CHARTS = Path(__file__).parents[2] / "charts"
IRIS = (CHARTS / "model-server/ci/iris-values.yaml").read_text()


def chart_with(tmp_path: Path, template: str, values: str = "image: {}\n") -> Path:
    chart = tmp_path / "strict"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: strict\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(values)
    (chart / "templates/cm.yaml").write_text(template)
    return chart


def test_a_template_that_fails_is_a_refusal_quoting_helm(tmp_path: Path) -> None:
    chart = chart_with(
        tmp_path,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
        'data:\n  tag: {{ required "image.tag is required" .Values.image.tag | quote }}\n',
    )

    refused = render_chart_sync(chart, {})
    fine = render_chart_sync(chart, "image: {tag: v1}\n")

    assert isinstance(refused, HelmRefusal) and "image.tag is required" in refused.message
    assert isinstance(fine, Rendered) and fine.documents() == [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"tag": "v1"}}
    ]


def test_a_rendered_manifest_that_is_not_yaml_is_refused_naming_the_template(tmp_path: Path) -> None:
    chart = chart_with(tmp_path, "apiVersion: v1\nkind: ConfigMap\ndata: [{{ .Values.image.tag }}\n")

    result = render_chart_sync(chart, "image: {tag: v1}\n")

    assert isinstance(result, HelmRefusal)
    assert result.message.startswith("strict/templates/cm.yaml: the rendered manifest is not valid YAML")


def test_a_values_file_that_is_not_yaml_is_refused_in_helms_words() -> None:
    result = render_chart_sync(CHARTS / "model-server", "model: [1\n")

    assert isinstance(result, HelmRefusal)
    assert result.message.startswith("error converting YAML to JSON"), result.message


def test_a_refusal_names_each_value_helm_names_as_a_dotted_path() -> None:
    text = IRIS + "imagePullSecrets:\n  - {}\nresources:\n  requests:\n    cpu: 1 core\n"

    result = render_chart_sync(CHARTS / "model-server", text)

    assert isinstance(result, HelmRefusal)
    assert set(result.values) == {"imagePullSecrets[0]", "resources.requests.cpu"}, result
    assert "'1 core'" in result.message and str(result) == result.message


def test_check_values_raises_a_manifest_error_carrying_helms_message() -> None:
    check_values(CHARTS / "model-server", IRIS)  # fine: no exception

    with pytest.raises(HelmRefused) as refused:
        check_values(CHARTS / "model-server", IRIS.replace("models/iris/model.onnx", "../iris.onnx"))

    assert isinstance(refused.value, ManifestError)
    assert refused.value.refusal.values == ("model.path",)
    assert refused.value.problems == [refused.value.refusal.message]


def test_a_chart_that_cannot_be_loaded_is_an_error_not_a_refusal(tmp_path: Path) -> None:
    with pytest.raises(helm_module.helm.HelmError):
        render_chart_sync(tmp_path / "missing", {})


async def test_render_chart_runs_helm_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    real = helm_module.render_chart_sync

    def spy(*args: Any, **kwargs: Any) -> Rendered | HelmRefusal:
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(helm_module, "render_chart_sync", spy)

    result = await render_chart(CHARTS / "model-server", IRIS, release="rel", namespace="ml")

    assert threads and threads[0] is not threading.main_thread()
    assert isinstance(result, Rendered)
    assert result == real(CHARTS / "model-server", IRIS, release="rel", namespace="ml")
    assert {d["kind"] for d in result.documents()} == {"Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}
