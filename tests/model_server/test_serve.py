"""The reference model server answers OIP v2 and plain JSON, exports metrics, and refuses unpinned bytes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from devkit.onnx_models import IRIS_SETOSA, IRIS_VIRGINICA, write_iris_classifier, write_regressor
from model_server.model import ServedModel, load_onnx
from model_server.serve import FaultInjector, create_app, serve_model


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    path = tmp_path_factory.mktemp("model") / "iris.onnx"
    yield path, write_iris_classifier(path)


@pytest.fixture
def served(iris: tuple[Path, str]) -> ServedModel:
    path, sha256 = iris
    return ServedModel(
        name="iris", version="3", env="staging", predictor=load_onnx(path), sha256=sha256, variant="onnx_optimized"
    )


@pytest.fixture
async def client(aiohttp_client: Any, served: ServedModel) -> Any:
    return await aiohttp_client(create_app(served, faults=FaultInjector()))


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_infer_over_oip_v2_answers_labels_probabilities_and_echoes_the_id(client: Any) -> None:
    body = {
        "id": "r1",
        "inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": IRIS_SETOSA + IRIS_VIRGINICA}],
    }
    response = await client.post("/v2/models/iris/infer", json=body)
    assert response.status == 200
    answer = await response.json()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("iris", "3", "r1")
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["label"]["data"] == ["0", "2"]
    assert outputs["probabilities"]["shape"] == [2, 3]
    assert all(score > 0.9 for score in outputs["score"]["data"])


async def test_predict_takes_plain_json_instances(client: Any) -> None:
    response = await client.post("/predict", json={"instances": [IRIS_VIRGINICA]})
    answer = await response.json()
    assert response.status == 200
    assert answer["predictions"] == ["2"] and answer["version"] == "3"
    assert answer["probabilities"][0]["2"] > 0.9


async def test_health_and_metadata_describe_the_served_model(client: Any) -> None:
    assert (await client.get("/v2/health/live")).status == 200
    assert (await client.get("/v2/health/ready")).status == 200
    meta = await (await client.get("/v2/models/iris")).json()
    assert meta["versions"] == ["3"]
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]


async def test_an_unknown_model_name_is_a_404_that_names_the_served_model(client: Any) -> None:
    response = await client.post("/v2/models/wine/infer", json={"inputs": []})
    assert response.status == 404
    assert "iris" in (await response.json())["error"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"instances": []}, "at least one row"),
        ({"instances": [[1, 2], [3]]}, "rectangular"),
        ({"rows": [[1, 2, 3, 4]]}, "instances"),
    ],
)
async def test_bad_input_is_a_400_that_says_what_to_send(client: Any, body: Any, fragment: str) -> None:
    response = await client.post("/predict", json=body)
    assert response.status == 400
    assert fragment in (await response.json())["error"]


async def test_a_tensor_whose_data_does_not_fit_its_shape_is_refused(client: Any) -> None:
    body = {"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": IRIS_SETOSA}]}
    response = await client.post("/v2/models/iris/infer", json=body)
    assert response.status == 400
    assert "shape [2, 4] needs 8" in (await response.json())["error"]


async def test_metrics_count_requests_latency_predictions_and_input_statistics(client: Any) -> None:
    await client.post("/predict", json={"instances": [IRIS_SETOSA, IRIS_SETOSA, IRIS_VIRGINICA]})
    await client.post("/predict", json={"instances": "nope"})
    text = await (await client.get("/metrics")).text()
    values = samples(text)
    ident = {("model", "iris"), ("version", "3"), ("env", "staging")}

    def value(name: str, **labels: str) -> float:
        return values[(name, frozenset(ident | set(labels.items())))]

    assert value("modelship_model_requests_total", status="200") == 1
    assert value("modelship_model_requests_total", status="400") == 1
    assert value("modelship_model_requests_total", status="500") == 0  # exported before any error
    assert value("modelship_model_request_duration_seconds_count") == 2
    assert value("modelship_model_predictions_total", label="0") == 2
    assert value("modelship_model_predictions_total", label="2") == 1
    assert value("modelship_model_prediction_score_count") == 3
    assert value("modelship_model_input_feature_count_total", feature="0") == 3
    assert value("modelship_model_input_feature_positive_sum_total", feature="0") == pytest.approx(5.1 + 5.1 + 6.7)


async def test_every_replica_says_which_file_it_serves_in_one_info_series(client: Any, iris: tuple[Path, str]) -> None:
    # The bot's live tracking counts replicas by this series' sha256 (config/promql/live/serving.yml).
    values = samples(await (await client.get("/metrics")).text())
    info = [(labels, v) for (name, labels), v in values.items() if name == "modelship_model_info"]
    assert info == [
        (
            frozenset(
                {
                    ("model", "iris"),
                    ("version", "3"),
                    ("env", "staging"),
                    ("variant", "onnx_optimized"),
                    ("sha256", iris[1]),
                }
            ),
            1.0,
        )
    ]


async def test_fault_injection_fails_exactly_the_requested_fraction_with_500(client: Any) -> None:
    switched = await client.post("/admin/faults", json={"error_rate": 0.5})
    assert (await switched.json())["error_rate"] == 0.5
    statuses = [(await client.post("/predict", json={"instances": [IRIS_SETOSA]})).status for _ in range(10)]
    assert statuses.count(500) == 5 and statuses.count(200) == 5
    assert (await client.post("/admin/faults", json={"error_rate": 2})).status == 400


async def test_without_the_demo_switch_there_is_no_fault_endpoint(aiohttp_client: Any, served: ServedModel) -> None:
    client = await aiohttp_client(create_app(served))
    assert (await client.post("/admin/faults", json={"error_rate": 1})).status in (404, 405)


def test_fault_injector_spreads_failures_evenly() -> None:
    faults = FaultInjector(0.25)
    assert [faults.should_fail() for _ in range(8)] == [False, False, False, True] * 2


def test_the_server_refuses_a_file_whose_sha256_is_not_the_pinned_one(iris: tuple[Path, str]) -> None:
    path, _ = iris
    result = CliRunner().invoke(
        serve_model,
        ["--model", str(path), "--name", "iris", "--version", "3", "--sha256", "0" * 64, "--port", "0"],
    )
    assert result.exit_code == 1
    assert "refusing to serve" in result.output and "0" * 64 in result.output


def test_a_mounted_artifact_directory_serves_its_one_file_and_refuses_any_other_layout(
    iris: tuple[Path, str], tmp_path: Path
) -> None:
    """--model DIR is how the chart serves an image volume: exactly one file, still checked against --sha256."""
    path, _ = iris
    mounted = tmp_path / "artifact" / "model"
    mounted.mkdir(parents=True)
    (mounted / path.name).write_bytes(path.read_bytes())
    args = ["--model", str(mounted), "--name", "iris", "--version", "3", "--sha256", "0" * 64, "--port", "0"]

    result = CliRunner().invoke(serve_model, args)
    assert result.exit_code == 1 and "refusing to serve" in result.output  # the one file, checked

    (mounted / "extra.onnx").write_bytes(b"x")
    result = CliRunner().invoke(serve_model, args)
    assert result.exit_code == 1
    assert "must hold exactly one model file" in result.output and "extra.onnx" in result.output


def test_the_server_names_a_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "gone.onnx"
    result = CliRunner().invoke(
        serve_model, ["--model", str(missing), "--name", "m", "--version", "1", "--sha256", "0" * 64]
    )
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_modelship_serve_model_runs_this_server(iris: tuple[Path, str]) -> None:
    """The chart runs `modelship serve-model`: the CLI's lazy command map must reach model_server.serve."""
    from bot.cli import main

    path, _ = iris
    result = CliRunner().invoke(
        main, ["serve-model", "--model", str(path), "--name", "iris", "--version", "3", "--sha256", "0" * 64]
    )
    assert result.exit_code == 1
    assert "refusing to serve" in result.output


def test_importing_the_server_does_not_load_onnxruntime() -> None:
    """The bot registers `modelship serve-model` from this module; only running it may load the runtime."""
    code = "import sys, model_server.serve; print('onnxruntime' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


async def test_a_regressor_answers_values_and_exports_their_distribution(aiohttp_client: Any, tmp_path: Path) -> None:
    path = tmp_path / "line.onnx"
    write_regressor(path)
    model = ServedModel(name="line", version="1", predictor=load_onnx(path))
    client = await aiohttp_client(create_app(model))
    answer = await (await client.post("/predict", json={"instances": [[1.0], [-2.0]]})).json()
    assert answer["predictions"] == pytest.approx([3.0, -3.0], abs=1e-4)  # y = 2x + 1
    values = samples(await (await client.get("/metrics")).text())
    ident = frozenset({("model", "line"), ("version", "1"), ("env", "")})
    assert values[("modelship_model_prediction_value_count", ident)] == 2
    assert values[("modelship_model_input_feature_negative_sum_total", ident | {("feature", "0")})] == 2.0
