"""Everything before measuring: optional training, then the dataset and the model, checked together."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from contract.schema import ModelInfo, ModelSpec
from pipelines.datasets import Dataset, load_dataset
from pipelines.errors import PipelineError
from pipelines.files import resolve_in_repo, sha256_file
from pipelines.models import LoadedModel, OnnxPredictor, label_strings, load_model, model_format

OUTPUT_TAIL = 2000


@dataclass(frozen=True)
class Prepared:
    model: LoadedModel
    dataset: Dataset
    info: ModelInfo
    path: Path


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "model"


def train(spec: ModelSpec, repo_dir: Path, scratch: Path) -> Path:
    """Run the train command in a writable copy of the repository (the checkout is mounted read-only)."""
    train_spec = spec.get("train")
    command = train_spec["command"] if train_spec else ""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise PipelineError("invalid_spec", f"model `{spec['name']}`: `train.command` does not parse: {exc}") from exc
    if not argv:
        raise PipelineError("invalid_spec", f"model `{spec['name']}`: `train.command` is empty")
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the sandbox PATH may not carry a `python`
    workdir = scratch / f"train-{safe_name(spec['name'])}"
    # Evaluation and optimization in one process (pipelines.review) train once, not twice.
    marker = scratch / f"train-{safe_name(spec['name'])}.done"
    stamp = f"{repo_dir.resolve()}\n{command}"
    if marker.is_file() and marker.read_text() == stamp and workdir.is_dir():
        return workdir
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(repo_dir, workdir, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    _make_writable(workdir)  # copytree keeps the read-only modes of the mounted checkout
    try:
        done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, check=False)
    except OSError as exc:  # the sandbox wall clock bounds the run; no timeout of our own
        raise PipelineError("train_failed", f"`{command}` could not run: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-OUTPUT_TAIL:]
        raise PipelineError("train_failed", f"`{command}` {_how_it_ended(done.returncode)}:\n{tail}")
    marker.write_text(stamp)
    return workdir


def _make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def prepare(spec: ModelSpec, repo_dir: Path, scratch: Path) -> Prepared:
    if spec.get("train"):
        repo_dir = train(spec, repo_dir, scratch)
    model_path = resolve_in_repo(repo_dir, spec["path"], "models[].path")
    data_path = resolve_in_repo(repo_dir, spec["dataset"]["path"], "models[].dataset.path")
    dataset = load_dataset(data_path, spec["dataset"]["target"], spec["task"], spec["dataset"]["path"])
    loaded = load_model(model_path, spec["task"], bool(spec.get("allow_pickle", False)), spec["path"])
    loaded.predictor.check_features(dataset.columns)
    onnx = loaded.predictor if isinstance(loaded.predictor, OnnxPredictor) else None
    if onnx is not None and spec["task"] == "classification" and onnx.classes is None:
        # No class list in the graph: assume scikit-learn's convention, sorted labels.
        onnx.set_classes(sorted(set(label_strings(dataset.target.to_numpy()))))
    info: ModelInfo = {
        "path": spec["path"],
        "format": model_format(model_path),
        "sha256": sha256_file(model_path),
        "size_bytes": model_path.stat().st_size,
    }
    return Prepared(model=loaded, dataset=dataset, info=info, path=model_path)


def _how_it_ended(returncode: int) -> str:
    """Exit code or signal, in words: a SIGKILL here is the kernel's OOM killer at the sandbox limit."""
    if returncode >= 0:
        return f"exited with {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    if -returncode == signal.SIGKILL:
        return f"was killed ({name}): most likely it ran out of memory at the sandbox.memory limit"
    return f"was killed by {name}"
