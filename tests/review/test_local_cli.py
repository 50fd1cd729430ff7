"""`modelship eval` / `modelship optimize` on a local git repository, through the real sandbox (podman)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.review.local import eval_command, optimize_command

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-model-repo"
pytestmark = pytest.mark.slow


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Alice", "-c", "user.email=alice@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@dataclass(frozen=True)
class Repo:
    path: Path
    base_model: bytes
    head_model: bytes


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """main: the sample; `retrain`: retrained with 20 trees of depth 3; `bad-policy`: an invalid config."""
    path = tmp_path_factory.mktemp("local-cli") / "repo"
    shutil.copytree(SAMPLE, path, ignore=shutil.ignore_patterns("__pycache__"))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "Sample model")
    base_model = (path / "models" / "churn.skops").read_bytes()
    git(path, "checkout", "-qb", "retrain")
    subprocess.run(
        [sys.executable, "train.py", "--trees", "20", "--depth", "3"], cwd=path, check=True, capture_output=True
    )
    git(path, "commit", "-qam", "Retrain with 20 trees")
    head_model = (path / "models" / "churn.skops").read_bytes()
    git(path, "checkout", "-qb", "bad-policy", "main")
    config = (path / ".modelship.yml").read_text().replace("f1: {min_delta: -0.01}", "f1: {min_delta: lots}")
    (path / ".modelship.yml").write_text(config)
    git(path, "commit", "-qam", "Break the policy")
    git(path, "checkout", "-q", "main")
    return Repo(path, base_model, head_model)


def sklearn_metrics(model_bytes: bytes) -> dict[str, float]:
    import pandas as pd
    import skops.io as sio
    from sklearn import metrics

    model = sio.loads(model_bytes, trusted=sio.get_untrusted_types(data=model_bytes))
    frame = pd.read_csv(SAMPLE / "data" / "eval.csv")
    x, y = frame.drop(columns="label").to_numpy(), frame["label"].to_numpy()
    predicted = model.predict(x)
    return {
        "accuracy": metrics.accuracy_score(y, predicted),
        "precision": metrics.precision_score(y, predicted),
        "recall": metrics.recall_score(y, predicted),
        "f1": metrics.f1_score(y, predicted),
        "roc_auc": metrics.roc_auc_score(y, model.predict_proba(x)[:, 1]),
    }


def run(command: object, *args: str) -> Result:
    return CliRunner().invoke(command, list(args), catch_exceptions=False)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sandbox_args(podman_url: str, runner_image: str) -> list[str]:
    return ["--engine", podman_url, "--image", runner_image]


@pytest.fixture(scope="module")
def evaluated(repo: Repo, sandbox_args: list[str]) -> Result:
    return run(
        eval_command, "--repo", str(repo.path), "--base", "main", "--head", "retrain", "--format", "json", *sandbox_args
    )


def test_eval_prints_scikit_learns_numbers_for_base_and_head_as_json(evaluated: Result, repo: Repo) -> None:
    doc = json.loads(evaluated.stdout)
    churn = {m["name"]: m for m in doc["models"]}["churn"]
    assert churn["status"] == "compared"
    by_name = {row["name"]: row for row in churn["metrics"]}
    for side, model in (("base", repo.base_model), ("head", repo.head_model)):
        for metric, expected in sklearn_metrics(model).items():
            assert by_name[metric][side] == pytest.approx(expected, abs=1e-12), (side, metric)
    assert doc["base"]["ref"] == "main" and doc["head"]["ref"] == "retrain"
    # The head was optimized like the bot does: the report names the chosen variant.
    assert doc["optimization"]["models"][0]["chosen"]["variant"] in {"original", "onnx_fp32", "onnx_optimized"}


def test_eval_exit_code_follows_the_gates(evaluated: Result) -> None:
    doc = json.loads(evaluated.stdout)
    gates = [g for m in doc["models"] for g in m["gates"]]
    f1 = next(g for g in gates if g["metric"] == "f1")
    assert f1["status"] == "fail"  # 20 shallow trees lose more than 0.01 F1 against the sample's 100
    assert evaluated.exit_code == 1 and doc["passed"] is False


def test_eval_reports_progress_on_stderr(evaluated: Result) -> None:
    for step in ("exporting trees", "starting sandbox", "evaluating base and head", "base ", "head ", "comparing"):
        assert step in evaluated.stderr, evaluated.stderr


def test_eval_prints_a_terminal_table_with_the_gates(repo: Repo, sandbox_args: list[str]) -> None:
    result = run(
        eval_command, "--repo", str(repo.path), "--base", "main", "--head", "retrain", "--no-optimize", *sandbox_args
    )
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    accuracy = next(line for line in lines if line.startswith("accuracy "))
    base, head = sklearn_metrics(repo.base_model)["accuracy"], sklearn_metrics(repo.head_model)["accuracy"]
    assert f"{base:.4f}" in accuracy and f"{head:.4f}" in accuracy and f"{head - base:+.4f}" in accuracy
    f1_gate = next(line for line in lines if line.startswith("f1 ") and "Δ >= -0.01" in line)
    assert f1_gate.endswith("FAIL")


def test_optimize_prints_the_variant_table(repo: Repo, sandbox_args: list[str]) -> None:
    result = run(optimize_command, "--repo", str(repo.path), "--ref", "retrain", *sandbox_args)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "holds" in rows["onnx_fp32"]
    assert "not_applicable" in rows["int8_dynamic"]  # tree ensembles are ai.onnx.ml ops: nothing to quantize
    assert rows["chosen:"].split()[1] in {"original", "onnx_fp32", "onnx_optimized"}
    assert "exporting tree" in result.stderr and "starting sandbox" in result.stderr


# --------------------------------------------------------------------------- usage and config errors: exit 2


def test_an_unknown_ref_exits_2_naming_it(repo: Repo) -> None:
    result = run(eval_command, "--repo", str(repo.path), "--base", "main", "--head", "no-such-branch")
    assert result.exit_code == 2
    assert "--head 'no-such-branch' is not a commit" in result.stderr


def test_an_invalid_policy_on_the_base_exits_2_naming_the_key_and_line(repo: Repo) -> None:
    result = run(eval_command, "--repo", str(repo.path), "--base", "bad-policy", "--head", "retrain")
    assert result.exit_code == 2
    assert ".modelship.yml at bad-policy" in result.stderr and "is invalid" in result.stderr
    assert "models[0].gates.f1.min_delta" in result.stderr and "line 12" in result.stderr


def test_optimize_reads_the_policy_at_its_ref(repo: Repo) -> None:
    result = run(optimize_command, "--repo", str(repo.path), "--ref", "bad-policy")
    assert result.exit_code == 2 and "models[0].gates.f1.min_delta" in result.stderr


def test_an_unknown_model_exits_2_listing_the_configured_ones(repo: Repo) -> None:
    result = run(eval_command, "--repo", str(repo.path), "--base", "main", "--head", "retrain", "--model", "nope")
    assert result.exit_code == 2 and "--model 'nope' is not in .modelship.yml at main; models: churn" in result.stderr


def test_a_directory_that_is_not_a_repository_exits_2(tmp_path: Path) -> None:
    result = run(eval_command, "--repo", str(tmp_path), "--base", "main", "--head", "main")
    assert result.exit_code == 2 and "not a git repository" in result.stderr


# --------------------------------------------------------------------------- trees that cannot be exported: exit 1


@pytest.mark.parametrize(
    ("target", "complaint"),
    [("/etc/passwd", "is a link to an absolute path"), ("../../../../etc/passwd", "which is outside the destination")],
)
def test_a_symlink_out_of_the_tree_is_a_readable_review_error(repo: Repo, target: str, complaint: str) -> None:
    branch = "link-" + str(abs(hash(target)))
    git(repo.path, "checkout", "-qb", branch, "main")
    try:
        (repo.path / "data" / "leak.csv").symlink_to(target)
        git(repo.path, "add", "-A")
        git(repo.path, "commit", "-qm", "A link out of the tree")
    finally:
        git(repo.path, "checkout", "-q", "main")
    result = run(eval_command, "--repo", str(repo.path), "--base", "main", "--head", branch)
    assert result.exit_code == 1, result.output
    assert f"Error: {branch} (" in result.stderr and "cannot be reviewed" in result.stderr, result.stderr
    assert "data/leak.csv" in result.stderr and complaint in result.stderr
    assert "Traceback" not in result.output


def test_the_out_caps_come_from_the_environment_through_the_options(repo: Repo) -> None:
    """The entry point reads MODELSHIP_SANDBOX_OUT_MAX_BYTES (a click option), and names it when it is wrong."""
    result = CliRunner().invoke(
        eval_command,
        ["--repo", str(repo.path), "--base", "main", "--head", "retrain"],
        env={"MODELSHIP_SANDBOX_OUT_MAX_BYTES": "lots"},
    )
    assert result.exit_code == 2
    assert "--out-max-bytes" in result.output and "'lots' is not a valid integer" in result.output
