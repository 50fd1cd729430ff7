"""`modelship eval` and `modelship optimize`: the review's sandboxed evaluation on a local git repository.

    modelship eval --repo PATH --base REF --head REF [--format table|markdown|json] [--model NAME]
    modelship optimize --repo PATH --ref REF [--format table|markdown|json] [--model NAME]

Same policy as the bot (`.modelship.yml` read from the BASE ref), same hardened sandbox, same report:
`--format markdown` prints exactly the sticky comment body. Exit codes: 0 gates pass, 1 a gate (or the
evaluation) failed, 2 usage or config error. Progress goes to stderr so stdout stays the report.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import git

from bot.config.repo import RepoConfig, RepoConfigError, parse_repo_config
from bot.review import report
from bot.review.checkout import CONFIG_FILE, CheckoutError, export_tree, resolve_lfs
from bot.review.compare import ModelComparison, ReviewComparison
from bot.review.evaluation import (
    compare_runs,
    make_readable,
    optimization_of,
    review_sandbox_spec,
    sandbox_limits,
    selected_models,
)
from bot.review.optimization import render_optimization
from bot.sandbox.runner import SandboxResult, SandboxRunner, SandboxSpec
from bot.settings import SOURCE_ROOT, Settings
from contract import lfs

FORMATS = ("table", "markdown", "json")
Progress = Callable[[str], None]


class LocalError(click.ClickException):
    """A usage or configuration problem the user fixes: exit code 2, message names the ref or key."""

    exit_code = 2


class ReviewRefused(click.ClickException):
    """The change itself cannot be reviewed (e.g. a symlink out of the tree): exit code 1, like a failed gate."""

    exit_code = 1


# --------------------------------------------------------------------------- git (blocking, run off-loop)


@dataclass(frozen=True)
class Side:
    ref: str
    sha: str
    tree: Path


def open_repo(path: Path) -> git.Repo:
    try:
        return git.Repo(path, search_parent_directories=False)
    except (git.NoSuchPathError, git.InvalidGitRepositoryError):
        raise LocalError(f"--repo {path}: not a git repository (run `git init` there, or point at its root)") from None


def resolve(repo: git.Repo, ref: str, option: str) -> str:
    try:
        return str(repo.commit(ref).hexsha)
    except (git.BadName, ValueError, git.GitCommandError):
        raise LocalError(f"{option} {ref!r} is not a commit in {repo.working_dir} (try a branch, tag or SHA)") from None


def read_config(repo: git.Repo, sha: str, ref: str) -> RepoConfig:
    """The policy at one commit; every problem is reported with its key and line."""
    try:
        text = repo.git.show(f"{sha}:{CONFIG_FILE}")
    except git.GitCommandError:
        raise LocalError(f"no {CONFIG_FILE} at {ref} ({sha[:12]}): the policy is read from that ref") from None
    try:
        return parse_repo_config(text, deploy_root=None)  # a local review never deploys
    except RepoConfigError as exc:
        problems = "\n".join(f"  - {p}" for p in exc.problems)
        raise LocalError(f"{CONFIG_FILE} at {ref} ({sha[:12]}) is invalid:\n{problems}") from None


def _export(repo: git.Repo, sha: str, dest: Path, ref: str) -> None:
    try:
        export_tree(repo, sha, dest)
        # LFS-tracked files come from this repository's own LFS store (`git lfs fetch` fills it).
        resolve_lfs(dest, lfs.LocalObjects(Path(repo.common_dir)), sha)
    except CheckoutError as exc:
        raise ReviewRefused(f"{ref} ({sha[:12]}) cannot be reviewed: {exc}") from None
    make_readable(dest)


# --------------------------------------------------------------------------- the sandbox


def default_engine_url() -> str:
    """The podman service this checkout starts (when neither --engine nor its environment variables are set)."""
    script = SOURCE_ROOT / "scripts" / "podman-service.sh"
    done = subprocess.run([str(script)], capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0 or not done.stdout.strip():
        raise LocalError(
            f"no container engine: set MODELSHIP_CONTAINER_ENGINE_URL or pass --engine ({script} failed: "
            f"{done.stderr.strip()[-300:] or 'no output'})"
        )
    return done.stdout.strip().splitlines()[-1]


def make_runner(url: str, image: str, limits: Any = None) -> SandboxRunner:
    """A hardened runner; the local image also gets the host's Python runtime mounted read-only."""
    import docker

    from bot.sandbox.docker_engine import DockerEngineRunner, connect
    from bot.sandbox.local_image import DEFAULT_TAG, LocalRuntime, build_image

    try:
        client = connect(url)
        client.ping()
    except Exception as exc:  # docker.errors.DockerException, requests' connection errors
        raise LocalError(
            f"container engine at {url} is unreachable ({type(exc).__name__}); "
            "start it with scripts/podman-service.sh or pass --engine URL"
        ) from None
    if image != DEFAULT_TAG:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            raise LocalError(f"--image {image!r} is not on the engine at {url}: pull or build it first") from None
        return DockerEngineRunner(client, limits=limits)
    runtime = LocalRuntime.discover(Path(sys.prefix), SOURCE_ROOT)
    build_image(client.images, runtime, image)  # reuses the image when it is up to date
    return DockerEngineRunner(client, runtime_mounts=runtime.mounts(), limits=limits)


# --------------------------------------------------------------------------- the runs


def _summarise_background_errors(progress: Progress) -> None:
    """A helper thread's failure (e.g. a log stream timing out on a busy engine) does not change the
    result; say so in one line instead of asyncio's traceback on stderr."""

    def handle(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        progress(f"warning: {context.get('message', 'background error')}" + (f": {exc!r}"[:200] if exc else ""))

    asyncio.get_running_loop().set_exception_handler(handle)


async def run_one(runner: SandboxRunner, spec: SandboxSpec, progress: Progress) -> SandboxResult:
    _summarise_background_errors(progress)
    return await runner.run(spec)


@dataclass(frozen=True)
class LocalReview:
    base: Side
    head: Side
    comparison: ReviewComparison
    optimization: dict[str, Any] | None
    base_run: SandboxResult
    head_run: SandboxResult


async def review(
    runner: SandboxRunner,
    image: str,
    config: RepoConfig,
    base: Side,
    head: Side,
    *,
    only: str | None,
    optimize: bool,
    progress: Progress,
) -> LocalReview:
    """Both sides in the sandbox at once (like the bot), then the comparison."""
    _summarise_background_errors(progress)

    async def side(name: str, tree: Side, with_optimize: bool) -> SandboxResult:
        spec = review_sandbox_spec(config, tree.tree, only, optimize=with_optimize, image=image)
        run = await runner.run(spec)
        outcome = "done" if run.ok else f"FAILED: {run.error}"
        progress(
            f"{name} {tree.sha[:12]}: {outcome} ({run.duration_s:.1f} s, container start {run.container_start_s:.2f} s)"
        )
        return run

    for note in sandbox_limits(config).notes:
        progress(f"warning: {note}")
    what = "evaluating base and head" + (", optimizing head" if optimize else "")
    progress(f"{what} in the sandbox ({', '.join(m.name for m in selected_models(config, only))})")
    base_run, head_run = await asyncio.gather(side("base", base, False), side("head", head, optimize))
    progress("comparing (paired bootstrap)")
    comparison = await asyncio.to_thread(compare_runs, config, only, base_run, head_run)
    return LocalReview(base, head, comparison, optimization_of(head_run) if optimize else None, base_run, head_run)


# --------------------------------------------------------------------------- rendering (pure)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    fmt = [" ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows]
    head = " ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(headers))
    return "\n".join([head, line.replace("  ", " "), *fmt])


_VERDICTS = {"better": "better", "worse": "WORSE", "within_noise": "within noise", "failed": "FAILED", "n/a": "n/a"}


def _rule(rule: str, threshold: float) -> str:
    return ("Δ " if rule.endswith("delta") else "") + (">= " if rule.startswith("min") else "<= ") + f"{threshold:g}"


def _model_table(model: ModelComparison) -> str:
    status = {
        "compared": "",
        "new": " (new: no base)",
        "head_failed": " — HEAD FAILED",
        "base_failed": " — base failed",
    }
    lines = [f"Model {model.name} ({model.task}){status[model.status]}"]
    if model.error:
        lines.append(f"  error: {model.error}")
    if model.dataset_warning:
        lines.append(f"  warning: {model.dataset_warning}")
    rows = [
        [
            row.name,
            report.number(row.base, row.name),
            report.number(row.head, row.name),
            report.signed(row.delta, row.name).replace("−", "-"),
            f"[{report.signed(row.ci.low)}, {report.signed(row.ci.high)}]".replace("−", "-") if row.ci else "-",
            _VERDICTS[row.verdict],
        ]
        for row in model.metrics
    ]
    lines.append(text_table(["metric", "base", "head", "Δ", "95% CI of Δ", "verdict"], rows))
    if model.gates:
        gates = [
            [
                g.metric,
                _rule(g.rule, g.threshold),
                (report.signed if g.rule.endswith("delta") else report.number)(g.value, g.metric).replace("−", "-"),
                g.status.upper() if g.status == "fail" else g.status,
            ]
            for g in model.gates
        ]
        lines += ["", text_table(["gate", "rule", "value", "result"], gates)]
        lines += [f"  {g.metric}: {g.reason}" for g in model.gates if g.status != "pass"]
    else:
        lines.append("no gates configured")
    return "\n".join(lines)


def _size(n: Any) -> str:
    if not isinstance(n, int | float):
        return "-"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def optimization_table(doc: Mapping[str, Any] | None) -> str:
    """The optimization report as a terminal table per model (same columns as the comment)."""
    if not doc:
        return "optimization: not run"
    if doc.get("error"):
        return f"optimization did not run: {doc['error'].get('message', '')}"
    parts = []
    for model in doc.get("models", []):
        if model.get("error"):
            parts.append(f"Optimization of {model.get('name')}: failed: {model['error'].get('message', '')}")
            continue
        chosen = (model.get("chosen") or {}).get("variant")
        primary = "accuracy" if model.get("task") == "classification" else "mae"
        rows = []
        for v in model.get("variants", []):
            if v.get("status") != "ok":
                rows.append([v.get("name", "?"), "-", v.get("status", "?"), "-", "-", (v.get("reason") or "")[:60], ""])
                continue
            lat, parity = v.get("latency") or {}, v.get("parity") or {}
            diff = parity.get("max_abs_prob_diff", parity.get("max_abs_error"))
            delta = (v.get("metric_delta") or {}).get(primary)
            rows.append(
                [
                    v["name"],
                    _size(v.get("size_bytes")),
                    f"{lat['p95_ms']:.3g} ms" if "p95_ms" in lat else "-",
                    f"{lat['batch_rows_per_s']:,.0f}/s" if "batch_rows_per_s" in lat else "-",
                    f"{primary} {delta:+.4f}" if isinstance(delta, int | float) else "-",
                    ("holds" if parity.get("holds") else "BROKEN")
                    + (f" (max Δ {diff:.2g})" if diff is not None else ""),
                    "*" if v["name"] == chosen else "",
                ]
            )
        title = f"Optimization of {model.get('name')}" + (f" — {model['estimator']}" if model.get("estimator") else "")
        table = text_table(["variant", "size", "p95", "throughput", "metric Δ", "parity", "chosen"], rows)
        reason = f"chosen: {chosen} — {model['chosen'].get('reason', '')}" if chosen else "chosen: none"
        parts.append(f"{title}\n{table}\n{reason}")
    return "\n\n".join(parts) or "optimization: no models"


def render_table(result: LocalReview) -> str:
    verdict = "all gates pass" if result.comparison.passed else "FAILED (a gate failed or the head did not evaluate)"
    lines = [
        f"Modelship review: base {result.base.ref} ({result.base.sha[:12]}) → head {result.head.ref} "
        f"({result.head.sha[:12]}): {verdict}"
    ]
    lines += ["", *(_model_table(m) + "\n" for m in result.comparison.models)]
    if result.optimization is not None:
        lines.append(optimization_table(result.optimization))
    return "\n".join(lines).rstrip() + "\n"


def render_markdown(result: LocalReview) -> str:
    """Exactly the sticky comment body the bot would post for this base and head."""
    return report.render_review_comment(
        result.comparison,
        head_sha=result.head.sha,
        base_sha=result.base.sha,
        optimization=render_optimization(result.optimization),
    )


def _json_model(model: ModelComparison) -> dict[str, Any]:
    return {
        "name": model.name,
        "task": model.task,
        "status": model.status,
        "passed": model.passed,
        "error": model.error,
        "dataset_warning": model.dataset_warning,
        "metrics": [
            {
                "name": r.name,
                "base": r.base,
                "head": r.head,
                "delta": r.delta,
                "ci": {"low": r.ci.low, "high": r.ci.high} if r.ci else None,
                "verdict": r.verdict,
                "higher_is_better": r.higher_is_better,
            }
            for r in model.metrics
        ],
        "gates": [
            {
                "metric": g.metric,
                "rule": g.rule,
                "threshold": g.threshold,
                "value": g.value,
                "status": g.status,
                "reason": g.reason,
            }
            for g in model.gates
        ],
        "mcnemar_p_value": model.mcnemar.p_value if model.mcnemar else None,
    }


def render_json(result: LocalReview) -> str:
    doc = {
        "schema_version": 1,
        "passed": result.comparison.passed,
        "base": {"ref": result.base.ref, "sha": result.base.sha},
        "head": {"ref": result.head.ref, "sha": result.head.sha},
        "models": [_json_model(m) for m in result.comparison.models],
        "optimization": result.optimization,
    }
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- commands


def _progress() -> Progress:
    began = time.monotonic()

    def say(message: str) -> None:
        click.echo(f"[{time.monotonic() - began:6.1f}s] {message}", err=True)

    return say


def _check_model(config: RepoConfig, model: str | None, ref: str) -> None:
    names = [m.name for m in config.models]
    if model and model not in names:
        raise LocalError(f"--model {model!r} is not in {CONFIG_FILE} at {ref}; models: {', '.join(names) or 'none'}")


_common = [
    click.option(
        "--repo",
        "repo_path",
        type=click.Path(file_okay=False, path_type=Path),
        default=".",
        show_default=True,
        help="Local git repository.",
    ),
    click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True),
    click.option("--model", help="Only this model (a name from .modelship.yml)."),
    click.option(
        "--engine",
        envvar=["MODELSHIP_CONTAINER_ENGINE_URL", "DOCKER_HOST"],
        help="Docker Engine API URL [MODELSHIP_CONTAINER_ENGINE_URL, DOCKER_HOST, else scripts/podman-service.sh].",
    ),
    click.option(
        "--out-max-bytes",
        "out_max_bytes",
        type=click.IntRange(min=0),
        envvar="MODELSHIP_SANDBOX_OUT_MAX_BYTES",
        default=Settings.model_fields["sandbox_out_max_bytes"].default,
        show_default=True,
        help="Cap on the sandbox's /out, as the service reads it (0: uncapped) [MODELSHIP_SANDBOX_OUT_MAX_BYTES].",
    ),
    click.option(
        "--out-max-files",
        "out_max_files",
        type=click.IntRange(min=16),
        envvar="MODELSHIP_SANDBOX_OUT_MAX_FILES",
        default=Settings.model_fields["sandbox_out_max_files"].default,
        show_default=True,
        help="Cap on the number of files in /out [MODELSHIP_SANDBOX_OUT_MAX_FILES].",
    ),
    click.option(
        "--image",
        default="modelship-runner:local",
        show_default=True,
        help="Runner image; the local one gets the host's Python runtime mounted read-only.",
    ),
]


def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_common):
        fn = option(fn)
    return fn


def _sandbox(engine: str | None, image: str, say: Progress, out_max_bytes: int, out_max_files: int) -> SandboxRunner:
    from bot.sandbox.docker_engine import OutputLimits

    url = engine or default_engine_url()
    say(f"starting sandbox (engine {url}, image {image})")
    return make_runner(url, image, OutputLimits(out_bytes=out_max_bytes, out_files=out_max_files))


@click.command("eval")
@_options
@click.option("--base", "base_ref", required=True, help="Base ref: its .modelship.yml is the policy.")
@click.option("--head", "head_ref", required=True, help="Head ref: the change under review.")
@click.option(
    "--optimize/--no-optimize",
    default=True,
    show_default=True,
    help="Also optimize the head (as the bot does when optimize.onnx is true).",
)
def eval_command(
    repo_path: Path,
    fmt: str,
    model: str | None,
    engine: str | None,
    image: str,
    out_max_bytes: int,
    out_max_files: int,
    base_ref: str,
    head_ref: str,
    optimize: bool,
) -> None:
    """Evaluate BASE and HEAD of a local repository in the sandbox and print the review.

    Exit code 0 when every gate passes, 1 when a gate or the head's evaluation fails, 2 on a usage
    or config error.
    """
    say = _progress()
    repo = open_repo(repo_path)
    base_sha, head_sha = resolve(repo, base_ref, "--base"), resolve(repo, head_ref, "--head")
    config = read_config(repo, base_sha, base_ref)
    _check_model(config, model, base_ref)
    with tempfile.TemporaryDirectory(prefix="modelship-eval-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        say(f"exporting trees: base {base_ref} ({base_sha[:12]}), head {head_ref} ({head_sha[:12]})")
        base, head = Side(base_ref, base_sha, work / "base"), Side(head_ref, head_sha, work / "head")
        _export(repo, base_sha, base.tree, base_ref)
        _export(repo, head_sha, head.tree, head_ref)
        runner = _sandbox(engine, image, say, out_max_bytes, out_max_files)
        result = asyncio.run(
            review(
                runner, image, config, base, head, only=model, optimize=optimize and config.optimize.onnx, progress=say
            )
        )
    render = {"table": render_table, "markdown": render_markdown, "json": render_json}[fmt]
    click.echo(render(result), nl=False)
    sys.exit(0 if result.comparison.passed else 1)


@click.command("optimize")
@_options
@click.option("--ref", required=True, help="The ref to optimize (its .modelship.yml is the policy).")
def optimize_command(
    repo_path: Path,
    fmt: str,
    model: str | None,
    engine: str | None,
    image: str,
    out_max_bytes: int,
    out_max_files: int,
    ref: str,
) -> None:
    """Convert, check parity, quantize and benchmark the models at REF in the sandbox; print the table.

    Exit code 0 when the optimization report came back, 1 when the sandbox run failed, 2 on a usage
    or config error. A variant that fails to convert is a row in the table, not a failure.
    """
    say = _progress()
    repo = open_repo(repo_path)
    sha = resolve(repo, ref, "--ref")
    config = read_config(repo, sha, ref)
    _check_model(config, model, ref)
    if not config.optimize.onnx:
        raise LocalError(f"optimize.onnx is false in {CONFIG_FILE} at {ref}: set it to true to optimize")
    with tempfile.TemporaryDirectory(prefix="modelship-optimize-") as tmp:
        tree = Path(tmp) / "tree"
        Path(tmp).chmod(0o755)
        say(f"exporting tree: {ref} ({sha[:12]})")
        _export(repo, sha, tree, ref)
        runner = _sandbox(engine, image, say, out_max_bytes, out_max_files)
        say(f"evaluating and optimizing {', '.join(m.name for m in selected_models(config, model))} in the sandbox")
        run = asyncio.run(run_one(runner, review_sandbox_spec(config, tree, model, optimize=True, image=image), say))
    say(f"{'done' if run.ok else 'FAILED: ' + str(run.error)} ({run.duration_s:.1f} s)")
    doc = optimization_of(run)
    if fmt == "json":
        click.echo(
            json.dumps(
                {"schema_version": 1, "ref": ref, "sha": sha, "ok": run.ok, "error": run.error, "optimization": doc},
                indent=2,
                allow_nan=False,
            )
        )
    elif fmt == "markdown":
        click.echo(render_optimization(doc) or f"Optimization did not run: {run.error}")
    else:
        click.echo(optimization_table(doc) if run.ok else f"optimization did not run: {run.error}")
    sys.exit(0 if run.ok and doc is not None else 1)
