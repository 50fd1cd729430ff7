"""The bot's chart and the Kubernetes sandbox: Role, NetworkPolicy and settings as the bot needs them."""

from __future__ import annotations

from typing import Any

from bot.sandbox import kube_jobs
from tests.charts.test_helm import CHARTS, Rendered, render, rendered


def by_kind(result: Rendered, kind: str) -> list[dict[str, Any]]:
    return [d for d in result.documents() if d["kind"] == kind]


def env_of(result: Rendered) -> dict[str, Any]:
    (deployment,) = by_kind(result, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_default_chart_runs_reviews_as_kubernetes_jobs_with_exactly_the_verbs_they_need() -> None:
    result = render("modelship", {"registry": {"host": "registry.example.com"}})
    assert isinstance(result, Rendered), result
    env = env_of(result)
    assert env["MODELSHIP_SANDBOX_BACKEND"] == "kubernetes"
    assert env["MODELSHIP_KUBERNETES_NAMESPACE"] == "modelship-sandbox"
    assert env["MODELSHIP_REGISTRY"] == "registry.example.com"
    assert env["MODELSHIP_KUBERNETES_INSTANCE"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["MODELSHIP_SANDBOX_IMAGE"] == env["MODELSHIP_KUBERNETES_INPUTS_IMAGE"]  # the bot's own image
    (deployment,) = by_kind(result, "Deployment")
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is True  # it creates Jobs

    (role,) = by_kind(result, "Role")
    assert role["metadata"]["namespace"] == "modelship-sandbox"
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): sorted(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("batch",), ("jobs",)): ["create", "delete", "get", "list", "watch"],
        (("",), ("pods",)): ["get", "list", "patch", "watch"],  # patch: removing the read-back gate
        (("",), ("pods/log",)): ["get"],
        (("networking.k8s.io",), ("networkpolicies",)): ["get"],
    }
    (binding,) = by_kind(result, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rel-modelship", "namespace": "ml"}]
    (namespace,) = by_kind(result, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_rendered_network_policy_is_the_one_the_bot_reads_back_and_accepts() -> None:
    (policy,) = by_kind(rendered(CHARTS / "modelship/ci/kubernetes-values.yaml"), "NetworkPolicy")
    assert policy["metadata"]["name"] == kube_jobs.NETWORK_POLICY
    assert policy["metadata"]["namespace"] == "reviews"
    assert kube_jobs.policy_problems(policy) == []
    assert policy["spec"] == kube_jobs.network_policy("reviews")["spec"]


def test_runtime_class_and_rollout_namespaces_reach_the_bot_and_its_roles() -> None:
    result = rendered(CHARTS / "modelship/ci/kubernetes-values.yaml")
    assert env_of(result)["MODELSHIP_KUBERNETES_RUNTIME_CLASS"] == "gvisor"
    assert not by_kind(result, "Namespace")  # createNamespace: false
    rollout = [r for r in by_kind(result, "Role") if r["metadata"]["name"].endswith("-rollout")]
    assert sorted(r["metadata"]["namespace"] for r in rollout) == ["production", "staging"]
    for role in rollout:
        assert all(set(rule["verbs"]) == {"get", "list", "watch"} for rule in role["rules"])


def test_the_docker_backend_renders_no_sandbox_namespace_role_or_policy_and_no_token() -> None:
    result = rendered(CHARTS / "modelship/ci/docker-values.yaml")
    assert not {"Namespace", "Role", "RoleBinding", "NetworkPolicy"} & {d["kind"] for d in result.documents()}
    assert env_of(result)["MODELSHIP_SANDBOX_BACKEND"] == "docker"
    (deployment,) = by_kind(result, "Deployment")
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
