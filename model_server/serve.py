"""Reference model server: Open Inference Protocol v2 plus plain JSON, with Prometheus metrics.

    python -m model_server.serve --model model.onnx --name iris --version 3 --sha256 HEX --port 8000

This is what ``charts/model-server`` runs. It refuses to start when the file's sha256 differs from
the pinned one, so a cluster only ever serves the bytes that were reviewed.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
import numpy as np
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from model_server.fetch import RegistryLogin
from model_server.metrics import ServerMetrics
from model_server.model import NUMPY_DTYPES, ModelLoadError, Prediction, ServedModel, verify_sha256

MAX_ROWS = 10_000
MAX_BODY_BYTES = 32 * 1024 * 1024
# Batches this large run in a worker thread so one big request does not stall the others.
THREAD_BATCH_ROWS = 64


class BadRequest(Exception):
    """The client sent something the model cannot take; the message says what."""


class FaultInjector:
    """TEST/DEMO ONLY: fails an exact fraction of inference requests with HTTP 500.

    Deterministic (every k-th request for a rate of 1/k) so demos and tests see the rate they asked for.
    """

    def __init__(self, error_rate: float = 0.0) -> None:
        self.error_rate = 0.0
        self._seen = 0
        self.set(error_rate)

    def set(self, error_rate: float) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be between 0 and 1, got {error_rate}")
        self.error_rate = error_rate
        self._seen = 0

    def should_fail(self) -> bool:
        before = math.floor(self._seen * self.error_rate)
        self._seen += 1
        return math.floor(self._seen * self.error_rate) > before


MODEL_KEY = web.AppKey("model", ServedModel)
METRICS_KEY = web.AppKey("metrics", ServerMetrics)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
FAULTS_KEY = web.AppKey("faults", FaultInjector)


def create_app(
    model: ServedModel,
    *,
    registry: CollectorRegistry | None = None,
    faults: FaultInjector | None = None,
) -> web.Application:
    """The HTTP app. ``faults`` (test/demo only) adds ``POST /admin/faults``; leave it None in production."""
    registry = registry or CollectorRegistry()
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_json_errors])
    app[MODEL_KEY] = model
    app[REGISTRY_KEY] = registry
    app[METRICS_KEY] = ServerMetrics(model, registry)
    app.router.add_get("/v2", server_metadata)
    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2/health/ready", live)
    app.router.add_get("/v2/models/{name}", model_metadata)
    app.router.add_get("/v2/models/{name}/ready", model_ready)
    app.router.add_post("/v2/models/{name}/infer", _instrumented(infer))
    app.router.add_post("/predict", _instrumented(predict))
    app.router.add_get("/metrics", metrics)
    if faults is not None:
        app[FAULTS_KEY] = faults
        app.router.add_get("/admin/faults", get_faults)
        app.router.add_post("/admin/faults", set_faults)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)


def _instrumented(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        faults = request.app.get(FAULTS_KEY)
        try:
            if faults is not None and faults.should_fail():
                response: web.StreamResponse = _error(
                    500, "injected fault (test/demo fault injection is on: POST /admin/faults)"
                )
            else:
                response = await handler(request)
        except BadRequest as exc:
            response = _error(400, str(exc))
        except web.HTTPException as exc:
            response = _error(exc.status, exc.reason)
        except Exception as exc:  # the model itself failed: answer 500 and keep serving
            response = _error(500, f"inference failed: {type(exc).__name__}: {exc}")
        request.app[METRICS_KEY].request(response.status, time.perf_counter() - started)
        return response

    return wrapped


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def server_metadata(request: web.Request) -> web.Response:
    return web.json_response({"name": "modelship-model-server", "version": "2", "extensions": []})


async def live(request: web.Request) -> web.Response:
    # The model is loaded before the server listens, so live means ready.
    return web.json_response({"live": True, "ready": True})


async def model_ready(request: web.Request) -> web.Response:
    model = _named_model(request)
    return web.json_response({"name": model.name, "ready": True})


async def model_metadata(request: web.Request) -> web.Response:
    model = _named_model(request)
    predictor = model.predictor
    return web.json_response(
        {
            "name": model.name,
            "versions": [model.version],
            "platform": model.platform,
            "inputs": [_spec(predictor.input)],
            "outputs": [_spec(o) for o in predictor.outputs],
        }
    )


def _spec(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": spec.shape}


def _named_model(request: web.Request) -> ServedModel:
    model = request.app[MODEL_KEY]
    if request.match_info["name"] != model.name:
        raise web.HTTPNotFound(
            reason=f"no model named {request.match_info['name']!r}; this server serves {model.name!r}"
        )
    return model


async def infer(request: web.Request) -> web.Response:
    model = _named_model(request)
    body = await _json_object(request)
    rows = _oip_rows(body, model)
    prediction = await _predict(request.app, rows)
    outputs: list[dict[str, Any]] = []
    n = len(prediction.scores)
    if prediction.labels is not None:
        outputs.append({"name": "label", "shape": [n], "datatype": "BYTES", "data": prediction.labels})
    if prediction.probabilities is not None and prediction.classes is not None:
        flat = [p for row in prediction.probabilities for p in row]
        outputs.append(
            {
                "name": "probabilities",
                "shape": [n, len(prediction.classes)],
                "datatype": "FP64",
                "data": flat,
                "parameters": {"classes": prediction.classes},
            }
        )
    outputs.append({"name": "score", "shape": [n], "datatype": "FP64", "data": prediction.scores})
    answer: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": outputs}
    if "id" in body:
        answer["id"] = body["id"]
    return web.json_response(answer)


async def predict(request: web.Request) -> web.Response:
    model = request.app[MODEL_KEY]
    body = await _json_object(request)
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise BadRequest('body must be {"instances": [[feature, ...], ...]} with at least one row')
    rows = _array(instances, np.float64, "instances")
    prediction = await _predict(request.app, rows)
    answer: dict[str, Any] = {"model": model.name, "version": model.version}
    if prediction.labels is not None:
        answer["predictions"] = prediction.labels
        answer["scores"] = prediction.scores
        if prediction.probabilities is not None:
            answer["probabilities"] = [
                dict(zip(prediction.classes or [], p, strict=True)) for p in prediction.probabilities
            ]
    else:
        answer["predictions"] = prediction.scores
    return web.json_response(answer)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response({"error_rate": request.app[FAULTS_KEY].error_rate, "test_only": True})


async def set_faults(request: web.Request) -> web.Response:
    try:
        body = await _json_object(request)
        rate = body.get("error_rate")
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise BadRequest('body must be {"error_rate": <number between 0 and 1>}')
        request.app[FAULTS_KEY].set(float(rate))
    except (BadRequest, ValueError) as exc:
        return _error(400, str(exc))
    return await get_faults(request)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _oip_rows(body: dict[str, Any], model: ServedModel) -> np.ndarray:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadRequest(
            f"'inputs' must be a list with exactly one tensor (the model's input {model.predictor.input.name!r})"
        )
    tensor = inputs[0]
    datatype = tensor.get("datatype", "FP32")
    if datatype not in NUMPY_DTYPES:
        raise BadRequest(f"inputs[0].datatype {datatype!r} is not one of {', '.join(NUMPY_DTYPES)}")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape) or not shape:
        raise BadRequest("inputs[0].shape must be a list of non-negative integers, e.g. [rows, features]")
    data = _array(tensor.get("data"), NUMPY_DTYPES[datatype], "inputs[0].data")
    if data.size != math.prod(shape):
        raise BadRequest(f"inputs[0].data has {data.size} values but shape {shape} needs {math.prod(shape)}")
    rows = data.reshape(shape)
    return rows if rows.ndim > 1 else rows.reshape(1, -1)


def _array(data: Any, dtype: Any, where: str) -> np.ndarray:
    if not isinstance(data, list):
        raise BadRequest(f"{where} must be a JSON array of numbers")
    try:
        array = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{where} must be a rectangular array of numbers: {exc}") from exc
    if array.ndim == 0 or array.shape[0] > MAX_ROWS:
        raise BadRequest(f"{where} must hold between 1 and {MAX_ROWS} rows")
    return array


async def _predict(app: web.Application, rows: np.ndarray) -> Prediction:
    predictor = app[MODEL_KEY].predictor
    if rows.shape[0] >= THREAD_BATCH_ROWS:
        prediction = await asyncio.to_thread(predictor.predict, rows)
    else:
        prediction = predictor.predict(rows)
    app[METRICS_KEY].observe(rows, prediction)
    return prediction


@click.command("serve-model")
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    help="ONNX file to serve, or a directory holding exactly one (a model artifact mounted as an image volume).",
)
@click.option(
    "--artifact",
    help="Fetch the model from this OCI artifact (registry/repo@sha256:…) first, verifying digest and --sha256.",
)
@click.option(
    "--models-dir",
    type=click.Path(path_type=Path),
    default=Path("/models"),
    show_default=True,
    help="Where --artifact writes the model (the chart mounts an emptyDir here).",
)
@click.option("--insecure", is_flag=True, envvar="MODELSHIP_REGISTRY_INSECURE", help="Plain HTTP registry.")
@click.option("--username", envvar="MODELSHIP_REGISTRY_USERNAME", help="Registry user (MODELSHIP_REGISTRY_USERNAME).")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="MODELSHIP_REGISTRY_PASSWORD_FILE",
    help="File with the registry password or token (MODELSHIP_REGISTRY_PASSWORD_FILE); never an argument.",
)
@click.option("--git", "git_url", help="Or fetch --git-path at --git-revision from this repository (Git LFS resolved).")
@click.option("--git-revision", help="With --git: the full commit SHA (values: model.revision).")
@click.option("--git-path", help="With --git: the model file in the repository (values: model.path).")
@click.option(
    "--git-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="MODELSHIP_GIT_TOKEN_FILE",
    help="With --git: file holding a read token (MODELSHIP_GIT_TOKEN_FILE); never an argument.",
)
@click.option("--name", required=True, help="Model name (in URLs and metrics).")
@click.option("--version", "version", required=True, help="Model version (in answers and metrics).")
@click.option("--sha256", required=True, help="Expected sha256 of the model file; the server refuses any other.")
@click.option("--env", default="", help="Environment name attached to every metric.")
@click.option(
    "--variant",
    default="original",
    show_default=True,
    envvar="MODELSHIP_MODEL_VARIANT",
    help="The variant the review chose (in modelship_model_info; MODELSHIP_MODEL_VARIANT).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--error-rate",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="TEST/DEMO ONLY: fail this fraction of inference requests with 500; enables POST /admin/faults.",
)
@click.option(
    "--allow-fault-injection",
    is_flag=True,
    help='TEST/DEMO ONLY: enable POST /admin/faults {"error_rate": x}. Never use in production.',
)
def serve_model(
    model_path: Path | None,
    artifact: str | None,
    models_dir: Path,
    insecure: bool,
    username: str | None,
    password_file: Path | None,
    git_url: str | None,
    git_revision: str | None,
    git_path: str | None,
    git_token_file: Path | None,
    name: str,
    version: str,
    sha256: str,
    env: str,
    variant: str,
    host: str,
    port: int,
    error_rate: float | None,
    allow_fault_injection: bool,
) -> None:
    """Serve an ONNX model over the Open Inference Protocol v2 with Prometheus metrics.

    With --artifact (or --git) the server fetches the pinned artifact (or file) itself (no init container: the same
    command runs under Kubernetes and `podman kube play`) and refuses to start on any mismatch.
    Registry credentials: MODELSHIP_REGISTRY_USERNAME and MODELSHIP_REGISTRY_PASSWORD_FILE.
    """
    if [model_path, artifact, git_url].count(None) != 2:
        raise click.UsageError("give exactly one of --model FILE, --artifact REF or --git URL")
    if git_url is not None:
        if not git_revision or not git_path:
            raise click.UsageError("--git needs --git-revision and --git-path")
        model_path = _fetch_git(git_url, git_revision, git_path, sha256, models_dir, git_token_file)
    if artifact is not None:
        model_path = _fetch(artifact, sha256, models_dir, RegistryLogin(insecure, username, password_file))
    assert model_path is not None
    if model_path.is_dir():
        model_path = _only_file(model_path)
    from model_server.model import (
        load_onnx,
    )  # keeps onnxruntime out of anything that only imports this module

    try:
        verify_sha256(model_path, sha256)
        predictor = load_onnx(model_path)
    except ModelLoadError as exc:
        raise click.ClickException(str(exc)) from exc
    faults = FaultInjector(error_rate or 0.0) if allow_fault_injection or error_rate is not None else None
    model = ServedModel(
        name=name, version=version, env=env, predictor=predictor, sha256=sha256.strip().lower(), variant=variant
    )
    if faults is not None:
        click.echo("WARNING: fault injection is on (test/demo only): POST /admin/faults", err=True)
    web.run_app(create_app(model, faults=faults), host=host, port=port, print=lambda line: click.echo(line, err=True))


def _only_file(directory: Path) -> Path:
    """The model file of a directory holding exactly one: a model artifact mounted as an image volume
    (its one layer holds ``model/<file>``; the kubelet pulled it by digest, --sha256 checks the file)."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.is_symlink())
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise click.ClickException(f"refused to serve: {directory} must hold exactly one model file (found: {found})")
    return files[0]


def _fetch(artifact: str, sha256: str, models_dir: Path, login: RegistryLogin) -> Path:
    from contract.oci import ArtifactError
    from model_server.fetch import fetch_model

    try:
        # One directory per pinned file: pods that share a volume never write over each other's model.
        path = fetch_model(login.reader(artifact), artifact, sha256, models_dir / sha256)
    except ArtifactError as exc:
        raise click.ClickException(f"refused to serve: {exc}") from None
    click.echo(f"verified {artifact} (file sha256 {sha256})", err=True)
    return path


def _fetch_git(url: str, revision: str, path: str, sha256: str, models_dir: Path, token_file: Path | None) -> Path:
    from model_server.git_source import GitSourceError, fetch_from_git

    token = token_file.read_text().strip() if token_file is not None else None
    try:
        fetched = fetch_from_git(url, revision, path, sha256, models_dir / sha256, token)
    except GitSourceError as exc:
        raise click.ClickException(f"refused to serve: {exc}") from None
    click.echo(f"verified {path} at {revision} (file sha256 {sha256})", err=True)
    return fetched


if __name__ == "__main__":
    serve_model()
