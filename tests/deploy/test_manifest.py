"""The values writer: round-trip edits, ordering, pins, what Helm says of the values, commit messages."""

from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path

import pytest

from bot.deploy.helm import HelmRefused, check_values
from bot.deploy.manifest import (
    ManifestError,
    ModelRef,
    commit_message,
    current_ref,
    is_newer,
    load_values,
    parse_trailers,
    pin,
    plan_deploy,
    pr_branch_name,
    render_values,
    unpin,
    values_path,
)

CHART = Path(__file__).parents[2] / "charts/model-server"

V1 = ModelRef(
    name="iris",
    repository="acme/models",
    revision="1" * 40,
    path="models/iris/model.onnx",
    sha256="a" * 64,
    variant="onnx",
    sequence=1_700_000_000,
    source_pr=41,
)
V2 = replace(V1, revision="2" * 40, sha256="b" * 64, variant="onnx-int8", sequence=1_700_000_600, source_pr=42)

HUMAN = f"""\
# Production values for iris. Owned by the ML platform team; Modelship edits model: only.
replicaCount: 3   # the SLA needs three

image:
  repository: ghcr.io/acme/model-server
  tag: "0.4.1"

model:
  name: iris
  repository: acme/models
  revision: "{V1.revision}"  # written by Modelship
  path: models/iris/model.onnx
  sha256: {V1.sha256}
  variant: onnx
  sequence: {V1.sequence}
  sourcePR: 41
  pinned: false
  pinReason: ""

# Sized for 2k rps.
resources:
  requests:
    cpu: 500m
"""


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_a_deploy_changes_only_the_model_lines_and_keeps_comments_order_and_quotes() -> None:
    after = plan_deploy(HUMAN, V2).text

    assert after is not None
    diff = changed_lines(HUMAN, after)
    assert [line for line in diff if line.startswith("-")] == [
        f'-  revision: "{V1.revision}"  # written by Modelship',
        f"-  sha256: {V1.sha256}",
        "-  variant: onnx",
        f"-  sequence: {V1.sequence}",
        "-  sourcePR: 41",
    ]
    assert [line for line in diff if line.startswith("+")] == [
        f'+  revision: "{V2.revision}"  # written by Modelship',
        f"+  sha256: {V2.sha256}",
        "+  variant: onnx-int8",
        f"+  sequence: {V2.sequence}",
        "+  sourcePR: 42",
    ]


def test_four_space_indentation_and_keys_modelship_does_not_own_are_kept() -> None:
    text = "model:\n    name: iris\n    owner: data-team  # ours, not Modelship's\nextra:\n    - a\n"

    after = render_values(text, V1)

    assert "    owner: data-team  # ours, not Modelship's\n" in after
    assert after.startswith("model:\n    name: iris\n    repository: acme/models\n")
    assert after.endswith("extra:\n    - a\n")


def test_a_new_file_gets_a_header_the_environment_and_valid_values() -> None:
    text = render_values(None, V1, env="staging")

    assert text.startswith("# Helm values for charts/model-server")
    assert load_values(text)["environment"] == "staging"
    assert "environment" not in load_values(render_values(HUMAN, V2, env="staging")), "only new files get it"
    assert current_ref(text) == V1
    check_values(CHART, text)  # Helm renders it


def test_a_redelivered_deploy_writes_nothing() -> None:
    first = plan_deploy(None, V1)
    assert first.text is not None

    again = plan_deploy(first.text, V1)

    assert (again.text, again.reason) == (None, "unchanged")


def test_an_older_version_never_overwrites_a_newer_one() -> None:
    deployed = render_values(None, V2)

    late = plan_deploy(deployed, V1)
    same_time = plan_deploy(deployed, replace(V1, sequence=V2.sequence))

    assert late.text is None and late.reason.startswith("stale: deployed 2222222")
    assert same_time.text is None, "a merge in the same second from an earlier PR keeps what is deployed"
    assert is_newer(None, V1) and is_newer(current_ref(render_values(None, V1)), V2)
    assert not is_newer(V2, V1)
    # Merge times have one-second resolution: in the same second, the later PR number wins.
    assert is_newer(V2, replace(V2, revision="3" * 40, source_pr=43))
    assert not is_newer(V2, replace(V2, revision="3" * 40, source_pr=41))


def test_a_rollback_pins_the_old_version_and_auto_deploy_respects_the_pin_until_unpinned() -> None:
    bad = render_values(HUMAN, V2)

    rolled_back = pin(bad, "error_rate 0.08 > 0.02", ref=V1).text
    assert rolled_back is not None
    restored = current_ref(rolled_back)
    assert restored is not None and restored.revision == V1.revision and restored.pinned
    assert restored.pin_reason == "error_rate 0.08 > 0.02"
    assert "# the SLA needs three" in rolled_back

    blocked = plan_deploy(rolled_back, replace(V2, sequence=V2.sequence + 1))
    assert blocked.text is None and blocked.reason.startswith("pinned: iris is pinned at 1111111")

    lifted = unpin(rolled_back).text
    assert lifted is not None and current_ref(lifted) == replace(V1, pinned=False, pin_reason="")
    assert plan_deploy(lifted, V2).changed
    assert unpin(lifted).text is None


def test_pinning_twice_is_a_no_op_and_pinning_nothing_is_an_error() -> None:
    once = pin(render_values(None, V1), "hold").text
    assert once is not None
    assert pin(once, "hold").text is None
    with pytest.raises(ManifestError, match="nothing to pin"):
        pin(None, "hold")


def test_values_helm_refuses_are_named_in_helms_words() -> None:
    """The writer writes; Helm judges (with Go's regular expressions), naming each value it refuses."""
    broken = plan_deploy(HUMAN, replace(V2, sha256="abc", variant="ONNX INT8")).text
    assert broken is not None

    with pytest.raises(HelmRefused) as refused:
        check_values(CHART, broken)

    assert set(refused.value.refusal.values) == {"model.sha256", "model.variant"}
    assert "'abc' does not match pattern" in refused.value.refusal.message


def test_paths_and_branches_follow_the_layout_and_refuse_escapes() -> None:
    assert values_path("staging", "iris") == "environments/staging/iris/values.yaml"
    assert values_path("prod", "iris", "clusters/{env}/apps/{model}.yaml") == "clusters/prod/apps/iris.yaml"
    assert pr_branch_name("prod", "iris") == "modelship/deploy/prod/iris"
    with pytest.raises(ManifestError, match=r"environment '\.\./prod'"):
        values_path("../prod", "iris")
    with pytest.raises(ManifestError, match="model 'a/b'"):
        values_path("prod", "a/b")


def test_the_commit_message_carries_provenance_metrics_and_trailers() -> None:
    message = commit_message(
        V2,
        "staging",
        source_pr_url="https://github.com/acme/models/pull/42",
        metrics={"accuracy": 0.953333, "p95_latency_ms": 0.21, "samples": 150},
        actor="octocat",
    )

    assert message.splitlines()[0] == "deploy(staging): iris 2222222 (onnx-int8)"
    for fragment in (
        "Source PR: https://github.com/acme/models/pull/42",
        f"Commit:    acme/models@{V2.revision}",
        f"sha256:    {V2.sha256}",
        "Variant:   onnx-int8",
        "  accuracy: 0.9533",
        "  samples: 150",
        "Actor:     octocat",
    ):
        assert fragment in message
    assert parse_trailers(message) == {
        "Modelship-Model": "iris",
        "Modelship-Version": V2.revision,
        "Modelship-Source-PR": "acme/models#42",
        "Modelship-Environment": "staging",
    }


def test_the_artifact_is_pinned_with_the_version_and_dropped_with_it() -> None:
    from dataclasses import replace as _replace

    artifact = "registry.example/acme/churn@sha256:" + "a" * 64
    ref = ModelRef("churn", "acme/churn", "1" * 40, "models/churn.skops", "b" * 64, "onnx_optimized", 10, 3)
    text = render_values(None, _replace(ref, artifact=artifact), env="staging")
    assert load_values(text)["model"]["artifact"] == artifact
    assert current_ref(text) == _replace(ref, artifact=artifact)
    assert "Artifact:  " + artifact in commit_message(_replace(ref, artifact=artifact), "staging")
    # A later version deployed without a registry must not keep pinning the old artifact's bytes.
    later = _replace(ref, revision="2" * 40, sha256="c" * 64, sequence=11)
    plan = plan_deploy(text, later)
    assert plan.text is not None and "artifact" not in load_values(plan.text)["model"]
