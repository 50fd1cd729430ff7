"""Scenarios for `.modelship.yml`: what users write, and the errors they get back (key, line, fix)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config.repo import (
    MAX_YAML_NODES,
    ConfigLoader,
    ConfigProblem,
    RepoConfig,
    RepoConfigError,
    json_schema,
    parse_repo_config,
)

ROOT = Path(__file__).resolve().parents[2]

ISSUE_EXAMPLE = """\
version: 1
paths: ["models/**", "data/**", "train.py"]      # changes that trigger a review
sandbox: {image: null, cpus: 1, memory: 2g, timeout: 600s}
models:
  - name: churn
    path: models/churn.onnx
    task: classification
    dataset: {path: data/eval.csv, target: label}
    train: {command: "python train.py"}
    metrics: [accuracy, precision, recall, f1, roc_auc]
    gates:
      f1: {min_delta: -0.01}
      accuracy: {min: 0.80}
      latency_p95_ms: {max: 20}
optimize: {onnx: true, quantize: static, parity_tolerance: 1e-4, select: auto}
environments:
  staging: {auto: true, via: commit}
  production:
    via: pull_request
    allowed: ["team:ml-release", "user:alice"]
    requires: [approved, mergeable]
    upstream: staging
    require_healthy_upstream: true
    guard:
      interval: 30s
      initial_delay: 2m
      failure_limit: 3
      on_no_data: inconclusive
      consecutive_error_limit: 5
      auto_merge: false
      checks:
        - {template: error_rate, max: 0.02, window: 5m}
        - {template: latency_p95, max: 0.05}
deploy: {repository: acme/deploy, path_template: "environments/{env}/{model}/values.yaml"}
"""

MINIMAL = """\
version: 1
models:
  - name: churn
    path: models/churn.onnx
    task: classification
    dataset: {path: data/eval.csv, target: label}
"""


def problems_of(text: str) -> list[ConfigProblem]:
    with pytest.raises(RepoConfigError) as caught:
        parse_repo_config(text)
    assert caught.value.problems, "an invalid config must explain itself"
    return caught.value.problems


def only_problem(text: str) -> ConfigProblem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def with_model_lines(*lines: str) -> str:
    """MINIMAL with extra keys for the model; they start at line 7."""
    return MINIMAL + "".join(f"    {line}\n" for line in lines)


# --------------------------------------------------------------------------- valid configs


def test_the_issue_example_parses_with_units_converted() -> None:
    config = parse_repo_config(ISSUE_EXAMPLE)

    assert config.sandbox.memory == 2 * 1024**3
    assert config.sandbox.timeout == 600.0
    model = config.models[0]
    assert model.train is not None and model.train.command == "python train.py"
    assert model.gates["f1"].min_delta == -0.01
    assert model.gates["latency_p95_ms"].max == 20
    assert config.optimize.parity_tolerance == pytest.approx(1e-4)
    production = config.environments["production"]
    assert production.upstream == "staging"
    assert production.guard is not None
    assert production.guard.initial_delay == 120.0
    assert production.guard.checks[0].window == 300.0
    assert config.deploy is not None and config.deploy.repository == "acme/deploy"
    assert config.review_paths == ["models/**", "data/**", "train.py"]


def test_a_minimal_config_gets_safe_defaults() -> None:
    config = parse_repo_config(MINIMAL)

    model = config.models[0]
    assert model.metrics == ["accuracy", "precision_macro", "recall_macro", "f1_macro"]
    assert model.allow_pickle is False
    assert config.draft is False
    assert config.sandbox.cpus == 1.0
    assert config.optimize.select == "auto"
    assert config.environments == {}
    # Without paths, only the model and dataset files trigger a review.
    assert config.review_paths == ["models/churn.onnx", "data/eval.csv"]
    assert config.model("churn") is model and config.model("other") is None


def test_a_pickle_is_accepted_only_when_explicitly_allowed() -> None:
    text = MINIMAL.replace("models/churn.onnx", "models/churn.joblib") + "    allow_pickle: true\n"

    assert parse_repo_config(text).models[0].allow_pickle is True


def test_regression_models_default_to_regression_metrics() -> None:
    text = MINIMAL.replace("classification", "regression")

    assert parse_repo_config(text).models[0].metrics == ["mae", "rmse", "r2"]


@pytest.mark.parametrize(
    ("memory", "expected"),
    [("512m", 512 * 1024**2), ("2G", 2 * 1024**3), ("1.5gb", int(1.5 * 1024**3)), (4096, 4096)],
)
def test_memory_sizes_use_binary_units(memory: object, expected: int) -> None:
    text = MINIMAL + f"sandbox: {{memory: {memory}}}\n"

    assert parse_repo_config(text).sandbox.memory == expected


# --------------------------------------------------------------------------- errors name key and line


def test_a_typo_names_the_key_its_line_and_the_likely_fix() -> None:
    problem = only_problem(MINIMAL + "sandbox:\n  cpus: 2\n  memroy: 2g\n")

    assert problem.key == "sandbox.memroy"
    assert problem.line == 9
    assert "did you mean 'memory'" in problem.message
    assert str(problem).startswith("line 9: sandbox.memroy:")


def test_a_typo_inside_a_model_names_the_list_index() -> None:
    problem = only_problem(with_model_lines("metrix: [accuracy]"))

    assert problem.key == "models[0].metrix"
    assert problem.line == 7
    assert "did you mean 'metrics'" in problem.message


def test_a_pickle_without_allow_pickle_points_at_the_path_line() -> None:
    problem = only_problem(MINIMAL.replace("models/churn.onnx", "models/churn.pkl"))

    assert problem.key == "models[0].path"
    assert problem.line == 4
    assert "allow_pickle: true" in problem.message


def test_an_unknown_model_format_is_refused() -> None:
    problem = only_problem(MINIMAL.replace("models/churn.onnx", "models/churn.h5"))

    assert problem.key == "models[0].path" and ".onnx or .skops" in problem.message


def test_a_metric_that_does_not_fit_the_task_is_named_with_its_index() -> None:
    text = MINIMAL.replace("classification", "regression") + "    metrics: [mae, accuracy]\n"

    problem = only_problem(text)

    assert problem.key == "models[0].metrics[1]"
    assert problem.line == 7
    assert "'accuracy' is not a known metric for a regression model" in problem.message


def test_a_misspelt_metric_gets_a_suggestion() -> None:
    problem = only_problem(with_model_lines("metrics: [acuracy]"))

    assert "did you mean 'accuracy'" in problem.message


def test_a_gate_on_an_unknown_metric_points_at_the_gate() -> None:
    problem = only_problem(with_model_lines("gates:", "  f1_macro: {min: 0.5}", "  latency_p95: {max: 20}"))

    assert problem.key == "models[0].gates.latency_p95"
    assert problem.line == 9
    assert "latency_p95_ms" in problem.message


def test_a_gate_without_rules_and_an_inverted_gate_are_both_reported() -> None:
    problems = problems_of(with_model_lines("gates:", "  f1: {}", "  accuracy: {min: 0.9, max: 0.5}"))

    by_key = {p.key: p for p in problems}
    assert by_key["models[0].gates.f1"].line == 8
    assert "at least one of min, max" in by_key["models[0].gates.f1"].message
    assert by_key["models[0].gates.accuracy.min"].line == 9
    assert "greater than max" in by_key["models[0].gates.accuracy.min"].message


def test_a_missing_key_points_at_its_parent() -> None:
    problem = only_problem(MINIMAL.replace("{path: data/eval.csv, target: label}", "{path: data/eval.csv}"))

    assert problem.key == "models[0].dataset.target"
    assert problem.line == 6
    assert "required" in problem.message


def test_a_wrong_enum_value_shows_what_was_written() -> None:
    problem = only_problem(MINIMAL.replace("task: classification", "task: clasification"))

    assert problem.key == "models[0].task" and problem.line == 5
    assert "'classification' or 'regression'" in problem.message and "clasification" in problem.message


def test_a_wrong_version_says_to_use_version_1() -> None:
    problem = only_problem(MINIMAL.replace("version: 1", "version: 2"))

    assert problem.key == "version" and problem.line == 1 and "version: 1" in problem.message


def test_several_problems_come_back_together_in_line_order() -> None:
    text = MINIMAL.replace("version: 1", "version: 3").replace("task: classification", "task: ranking")
    text += "sandbox: {timeout: soon}\n"

    problems = problems_of(text)

    assert [p.key for p in problems] == ["version", "models[0].task", "sandbox.timeout"]
    assert [p.line for p in problems] == [1, 5, 7]
    assert "like 30s, 5m or 1h" in problems[2].message


@pytest.mark.parametrize("path", ["/etc/passwd.csv", "../other/data.csv", "data/../../x.csv"])
def test_paths_must_stay_inside_the_repository(path: str) -> None:
    problem = only_problem(MINIMAL.replace("data/eval.csv", path))

    assert problem.key == "models[0].dataset.path" and "relative to the repository root" in problem.message


def test_model_names_must_be_unique() -> None:
    second = MINIMAL.split("models:\n", 1)[1]

    problem = only_problem(MINIMAL + second)

    assert problem.key == "models[1].name" and problem.line == 7 and "unique" in problem.message


def test_environments_need_a_deploy_repository() -> None:
    problem = only_problem(MINIMAL + "environments:\n  staging: {auto: true}\n")

    assert problem.key == "deploy" and "deploy: {repository: owner/name}" in problem.message


def test_an_unknown_upstream_names_the_environment_and_line() -> None:
    text = MINIMAL + "environments:\n  staging: {}\n  production:\n    upstream: stagin\ndeploy: {repository: a/b}\n"

    problem = only_problem(text)

    assert problem.key == "environments.production.upstream"
    assert problem.line == 10
    assert "did you mean 'staging'" in problem.message


def test_upstream_cycles_are_refused() -> None:
    text = MINIMAL + "environments:\n  a: {upstream: b}\n  b: {upstream: a}\ndeploy: {repository: a/b}\n"

    assert "cycle" in only_problem(text).message


def test_a_guard_check_needs_a_threshold_and_a_known_template() -> None:
    text = MINIMAL + textwrap.dedent(
        """\
        environments:
          production:
            guard:
              checks:
                - {template: error_rate}
                - {template: cpu, max: 1}
        deploy: {repository: a/b}
        """
    )

    problems = problems_of(text)

    assert [(p.key, p.line) for p in problems] == [
        ("environments.production.guard.checks[0]", 11),
        ("environments.production.guard.checks[1].template", 12),
    ]
    assert "add max or min" in problems[0].message


def test_allowed_principals_must_be_team_or_user() -> None:
    text = MINIMAL + "environments:\n  prod: {allowed: [alice]}\ndeploy: {repository: a/b}\n"

    problem = only_problem(text)

    assert problem.key == "environments.prod.allowed[0]" and problem.line == 8


def test_the_deploy_path_template_needs_env_and_model() -> None:
    text = MINIMAL + "deploy: {repository: a/b, path_template: 'envs/{model}.yaml'}\n"

    problem = only_problem(text)

    assert problem.key == "deploy.path_template" and "{env} and {model}" in problem.message


@pytest.mark.parametrize(
    ("template", "why"),
    [
        (".github/workflows/{env}-{model}.yml", "'.github' component"),
        ("environments/../.github/workflows/{env}-{model}.yml", "normalised"),
        (".git/hooks/{env}-{model}", "'.git' component"),
        ("environments/{env}/.GIT/{model}", "'.GIT' component"),
        ("environments/.{env}/{model}/values.yaml", "must not contain a placeholder"),
        ("environments//{env}/{model}/values.yaml", "normalised"),
        ("environments/./{env}/{model}/values.yaml", "normalised"),
        ("/environments/{env}/{model}/values.yaml", "relative"),
        ("charts/other/{env}-{model}.yaml", "must be under 'environments/'"),
        ("environments/{env}/{model}/" + "x" * 250 + ".yaml", "at most 255 characters"),
    ],
)
def test_the_deploy_path_template_stays_under_the_deploy_root_and_out_of_git_and_github(
    template: str, why: str
) -> None:
    text = MINIMAL + f"deploy:\n  repository: a/b\n  path_template: '{template}'\n"

    problem = only_problem(text)

    assert problem.key == "deploy.path_template" and problem.line == 9, problem
    assert why in problem.message, problem


def test_the_deploy_root_is_the_servers_and_the_default_template_follows_it() -> None:
    text = MINIMAL + "deploy: {repository: a/b, path_template: 'clusters/{env}/{model}.yaml'}\n"
    assert "MODELSHIP_DEPLOY_ROOT" in only_problem(text).message

    config = parse_repo_config(text, deploy_root="clusters/")
    assert config.deploy is not None and config.deploy.path_template == "clusters/{env}/{model}.yaml"
    default = parse_repo_config(MINIMAL + "deploy: {repository: a/b}\n", deploy_root="clusters/prod/")
    assert default.deploy is not None and default.deploy.path_template == "clusters/prod/{env}/{model}/values.yaml"
    # A caller that never deploys (a local review) does not know the server's root: only that rule is skipped.
    assert parse_repo_config(text, deploy_root=None).deploy is not None
    with pytest.raises(RepoConfigError, match=r"'\.github' component"):
        parse_repo_config(
            MINIMAL + "deploy: {repository: a/b, path_template: '.github/{env}/{model}'}\n", deploy_root=None
        )


def test_the_deploy_repository_must_be_owner_slash_name() -> None:
    problem = only_problem(MINIMAL + "deploy: {repository: https://github.com/a/b}\n")

    assert problem.key == "deploy.repository" and "owner/name" in problem.message


# --------------------------------------------------------------------------- YAML itself


def test_a_yaml_syntax_error_gives_its_line() -> None:
    problem = only_problem(MINIMAL + "sandbox: {cpus: 2\nother: 1\n")

    assert problem.key == ""
    assert problem.line is not None and problem.line >= 7
    assert problem.message.startswith("YAML syntax error")


def test_a_duplicate_key_is_an_error_not_a_silent_override() -> None:
    problem = only_problem(MINIMAL + "draft: true\ndraft: false\n")

    assert problem.key == "draft" and problem.line == 8 and "duplicate" in problem.message


@pytest.mark.parametrize("text", ["", "# nothing\n", "- a\n- b\n", "just a string\n"])
def test_a_document_that_is_not_a_mapping_is_explained(text: str) -> None:
    problems = problems_of(text)

    assert all(p.line == 1 for p in problems)


def test_the_file_size_is_capped() -> None:
    problem = only_problem(MINIMAL + "# " + "x" * 300_000 + "\n")

    assert "KiB" in problem.message


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]

    problem = only_problem("\n".join(lines) + "\n")

    assert str(MAX_YAML_NODES) in problem.message


def test_python_tags_are_not_executed() -> None:
    problem = only_problem(MINIMAL + "draft: !!python/object/apply:os.system ['true']\n")

    assert problem.line == 7


def test_the_error_message_lists_every_problem_with_its_file() -> None:
    with pytest.raises(RepoConfigError) as caught:
        parse_repo_config(MINIMAL + "bogus: 1\n", path="sub/.modelship.yml")

    assert caught.value.path == "sub/.modelship.yml"
    assert "invalid sub/.modelship.yml" in str(caught.value)
    assert "line 7: bogus:" in str(caught.value)


@pytest.mark.parametrize("key", ["0[", "[key]", "a.b", "1"])
def test_odd_top_level_keys_are_reported_like_any_other(key: str) -> None:
    problem = only_problem(MINIMAL + f"'{key}': 1\n")

    assert problem.line == 7 and "is not a known key here" in problem.message


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes_the_parser(text: str) -> None:
    try:
        parse_repo_config(text)
    except RepoConfigError as exc:
        assert all(isinstance(p.message, str) and p.message for p in exc.problems)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["version", "models", "sandbox", "paths", "draft", "deploy", "environments", "optimize", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
            max_leaves=10,
        ),
    )
)
def test_arbitrary_structures_yield_located_problems(data: dict[str, object]) -> None:
    try:
        parse_repo_config(yaml.safe_dump(data))
    except RepoConfigError as exc:
        assert all(p.line is not None and p.line >= 1 for p in exc.problems)


# --------------------------------------------------------------------------- JSON Schema


def test_the_committed_schema_equals_the_export() -> None:
    committed = json.loads((ROOT / "config" / "modelship.schema.json").read_text())

    assert committed == json_schema(), "config/modelship.schema.json is stale: run python scripts/export_schema.py"


def test_the_export_script_checks_the_committed_schema() -> None:
    script = ROOT / "scripts" / "export_schema.py"

    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


def test_the_json_schema_accepts_the_example_and_rejects_a_typo() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())

    # Editors read YAML 1.2, where 1e-4 is a number; so does the bot's loader.
    assert list(validator.iter_errors(yaml.load(ISSUE_EXAMPLE, Loader=ConfigLoader))) == []
    typo = yaml.load(MINIMAL + "sandbox: {memroy: 2g}\n", Loader=ConfigLoader)
    assert any("memroy" in e.message for e in validator.iter_errors(typo))


def test_the_model_is_frozen() -> None:
    config = parse_repo_config(MINIMAL)

    with pytest.raises(Exception, match="frozen"):
        config.draft = True
    assert isinstance(config, RepoConfig)


def test_an_environment_name_with_spaces_is_refused_at_its_line() -> None:
    problem = only_problem(MINIMAL + "environments:\n  'pro duction': {}\ndeploy: {repository: a/b}\n")

    assert problem.key == "environments.pro duction" and problem.line == 8
    assert "letters, digits" in problem.message


def test_live_tracking_defaults_to_ten_minutes_then_a_rollback() -> None:
    config = parse_repo_config(MINIMAL + "deploy: {repository: acme/deploy}\nenvironments:\n  staging: {auto: true}\n")

    assert config.environments["staging"].progress_deadline == 600.0
    assert config.environments["staging"].on_not_live == "rollback"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5s", "progress_deadline must be between 10s and 24h, got 5s"),
        ("25h", "progress_deadline must be between 10s and 24h, got 90000s"),
        ("soon", "'soon' is not a duration"),
    ],
)
def test_a_progress_deadline_out_of_range_names_the_key_and_the_limits(value: str, message: str) -> None:
    text = MINIMAL + f"deploy: {{repository: acme/deploy}}\nenvironments:\n  staging: {{progress_deadline: {value}}}\n"

    problem = only_problem(text)

    assert problem.key == "environments.staging.progress_deadline" and problem.line == 9
    assert message in problem.message


def test_on_not_live_is_rollback_or_alert() -> None:
    text = MINIMAL + "deploy: {repository: acme/deploy}\nenvironments:\n  staging: {on_not_live: page}\n"

    problem = only_problem(text)

    assert problem.key == "environments.staging.on_not_live" and "'rollback' or 'alert'" in problem.message


def test_an_environment_names_its_kubernetes_deployment_for_rollout_status() -> None:
    text = MINIMAL + "environments:\n  prod:\n    kubernetes: {namespace: ml-prod, deployment: churn-model-server}\n"
    config = parse_repo_config(text + "deploy: {repository: a/b}\n")

    target = config.environments["prod"].kubernetes
    assert target is not None and (target.namespace, target.deployment) == ("ml-prod", "churn-model-server")


def test_a_kubernetes_target_that_is_no_kubernetes_name_is_refused_naming_the_key_and_rule() -> None:
    text = MINIMAL + "environments:\n  prod:\n    kubernetes: {namespace: ML_Prod, deployment: x}\n"
    problem = only_problem(text + "deploy: {repository: a/b}\n")

    assert problem.key == "environments.prod.kubernetes.namespace" and problem.line == 9
    assert "'ML_Prod' must be a Kubernetes name: lower-case letters, digits and '-'" in problem.message


def test_a_kubernetes_target_without_its_deployment_says_which_key_is_missing() -> None:
    problem = only_problem(
        MINIMAL + "environments:\n  prod:\n    kubernetes: {namespace: ml}\ndeploy: {repository: a/b}\n"
    )

    assert problem.key == "environments.prod.kubernetes.deployment" and "required" in problem.message.lower()


def test_auto_environments_require_a_passed_review_unless_they_say_otherwise() -> None:
    text = MINIMAL + (
        "environments:\n  staging: {auto: true}\n  production: {upstream: staging}\n"
        "  canary: {auto: true, requires: []}\n  qa: {requires: [review_passed, approved]}\n"
        "deploy: {repository: a/b}\n"
    )

    envs = parse_repo_config(text).environments

    assert envs["staging"].requires == ["review_passed"]  # the default of an auto environment
    assert envs["production"].requires == []
    assert envs["canary"].requires == []  # written out: the repository's own choice
    assert envs["qa"].requires == ["review_passed", "approved"]


def test_an_unknown_requirement_names_the_key_and_the_known_ones() -> None:
    text = MINIMAL + "environments:\n  staging: {auto: true, requires: [review_pass]}\ndeploy: {repository: a/b}\n"

    problem = only_problem(text)

    assert problem.key == "environments.staging.requires[0]"
    assert "review_passed" in problem.message and "'review_pass'" in problem.message
