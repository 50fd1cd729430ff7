"""The Kubernetes sandbox's Job, NetworkPolicy, read-back check and frames, as pure functions."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from bot.sandbox import kube_jobs as kj
from bot.sandbox.runner import Mount, SandboxSpec
from pipelines import framed

DIGEST = "registry.local:5000/modelship@sha256:" + "a" * 64
VERSIONS = ["1.33.0", kubernetes_validate.utils.latest_version()]


def spec(**overrides: Any) -> SandboxSpec:
    fields: dict[str, Any] = {
        "image": "registry.local:5000/modelship:1",
        "argv": ("python", "-m", "pipelines.review", "--spec", "/inputs/spec.json"),
        "inputs": (Mount(Path("/tmp/tree"), "/inputs/repo"),),
        "cpus": 1.5,
        "memory_bytes": 512 << 20,
        "timeout_s": 42.5,
        "env": {"HOME": "/scratch"},
    }
    return SandboxSpec(**(fields | overrides))


def job(settings: kj.KubeSandboxSettings | None = None, **overrides: Any) -> dict[str, Any]:
    return kj.job_manifest(
        spec(**overrides),
        run_id="0123456789ab",
        owner="bot-0",
        inputs_image=DIGEST,
        inputs_bytes=64 << 20,
        settings=settings or kj.KubeSandboxSettings(namespace="sandbox", runtime_class="gvisor"),
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_the_job_and_the_network_policy_are_valid_kubernetes_objects(version: str) -> None:
    kubernetes_validate.validate(job(), version, strict=True)
    kubernetes_validate.validate(kj.network_policy("sandbox"), version, strict=True)


def test_every_control_of_the_issue_is_on_the_job_and_its_pod() -> None:
    manifest = job()
    assert manifest["spec"]["backoffLimit"] == 0
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 300
    assert manifest["spec"]["activeDeadlineSeconds"] == 43 + 300  # the run's timeout plus the start grace
    pod = manifest["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert pod["runtimeClassName"] == "gvisor" and pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in (*pod["initContainers"], *pod["containers"]):
        ctx = container["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 65534
        assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert set(container["resources"]["limits"]) == {"cpu", "memory", "ephemeral-storage"}
    sandbox = pod["containers"][0]
    assert sandbox["resources"]["limits"] == {
        "cpu": "1500m",
        "memory": str(512 << 20),
        "ephemeral-storage": str(256 << 20),
    }
    assert {"name": "inputs", "mountPath": "/inputs", "readOnly": True} in sandbox["volumeMounts"]
    volumes = {v["name"]: v["emptyDir"] for v in pod["volumes"]}
    assert volumes["scratch"] == {"medium": "Memory", "sizeLimit": str(256 << 20)}
    assert volumes["out"]["sizeLimit"] == str(512 << 20)
    assert not any("secret" in v or "projected" in v or "hostPath" in v for v in pod["volumes"])
    assert sandbox["command"][:3] == ["python", "-m", "pipelines.framed"]
    assert sandbox["command"][-5:] == list(spec().argv)
    assert pod["initContainers"][0]["image"] == DIGEST  # the inputs, pinned by digest
    labels = manifest["spec"]["template"]["metadata"]["labels"]
    assert labels[kj.SANDBOX_LABEL] == "run" and labels[kj.OWNER_LABEL] == "bot-0"


def test_an_inputs_image_not_pinned_by_digest_is_refused() -> None:
    with pytest.raises(ValueError, match="pinned by digest"):
        kj.job_manifest(
            spec(), run_id="ab", owner="x", inputs_image="r/m:latest", inputs_bytes=1, settings=kj.KubeSandboxSettings()
        )


def test_the_network_policy_denies_everything_for_sandbox_pods_and_a_weakened_one_is_named() -> None:
    policy = kj.network_policy("sandbox")
    assert kj.policy_problems(policy) == []
    assert policy["spec"]["podSelector"]["matchLabels"] == {kj.SANDBOX_LABEL: "run"}
    opened = copy.deepcopy(policy)
    opened["spec"]["egress"] = [{}]
    assert kj.policy_problems(opened) == [f"NetworkPolicy {kj.NETWORK_POLICY} allows traffic (ingress/egress rules)"]
    ingress_only = copy.deepcopy(policy)
    ingress_only["spec"]["policyTypes"] = ["Ingress"]
    assert "does not cover both Ingress and Egress" in kj.policy_problems(ingress_only)[0]
    assert kj.policy_problems(None) == [f"NetworkPolicy {kj.NETWORK_POLICY} is missing"]


def stored(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """What an API server returns: the same pod, with the defaults it fills in and quantities normalised."""
    pod = copy.deepcopy(template["spec"])
    pod["dnsPolicy"] = "ClusterFirst"
    pod["serviceAccountName"] = "default"
    for c in (*pod["initContainers"], *pod["containers"]):
        c["terminationMessagePath"] = "/dev/termination-log"
        c["resources"]["limits"]["memory"] = "512Mi" if c["name"] == "sandbox" else c["resources"]["limits"]["memory"]
    return pod, dict(template["metadata"]["labels"])


def test_the_pod_as_the_api_server_stores_it_passes_the_read_back() -> None:
    template = job()["spec"]["template"]
    pod, labels = stored(template)
    assert kj.missing_controls(pod, labels, template) == []


def test_the_pod_is_created_held_by_the_bots_scheduling_gate_and_released_only_as_read() -> None:
    template = job()["spec"]["template"]
    assert template["spec"]["schedulingGates"] == [{"name": kj.GATE}]
    pod, labels = stored(template)
    pod["schedulingGates"].insert(0, {"name": "example.com/quota"})  # another controller's gate stays
    read = {"metadata": {"name": "p", "resourceVersion": "41"}, "spec": pod}
    assert kj.ungate_patch(read) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "test", "path": "/spec/schedulingGates/1", "value": {"name": kj.GATE}},
        {"op": "remove", "path": "/spec/schedulingGates/1"},
    ]
    released = copy.deepcopy(pod)
    released["schedulingGates"] = [{"name": "example.com/quota"}]
    assert kj.missing_controls(released, labels, template, gated=False) == []  # after the bot's own release
    assert kj.missing_controls(released, labels, template)  # before it: a pod without the gate is refused


MUTATIONS = {
    "the token mounted": (lambda p, _: p.update(automountServiceAccountToken=True), "automountServiceAccountToken"),
    "a privileged sandbox": (
        lambda p, _: p["containers"][0]["securityContext"].update(privileged=True),
        "container sandbox: the container is privileged",
    ),
    "a capability added": (
        lambda p, _: p["containers"][0]["securityContext"]["capabilities"].update(add=["NET_RAW"]),
        "container sandbox: capabilities are not all dropped",
    ),
    "root": (lambda p, _: p["initContainers"][0]["securityContext"].update(runAsUser=0), "container inputs: runAsUser"),
    "a writable root": (
        lambda p, _: p["containers"][0]["securityContext"].pop("readOnlyRootFilesystem"),
        "readOnlyRootFilesystem is not true",
    ),
    "seccomp unconfined": (
        lambda p, _: p["containers"][0]["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        "seccompProfile is not RuntimeDefault",
    ),
    "the memory limit raised": (
        lambda p, _: p["containers"][0]["resources"]["limits"].update(memory="8Gi"),
        "memory limit is '8Gi'",
    ),
    "a secret injected": (
        lambda p, _: p["containers"][0].update(envFrom=[{"secretRef": {"name": "registry"}}]),
        "envFrom was added",
    ),
    "a host path mounted": (
        lambda p, _: p["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        "volumes are",
    ),
    "the runtime class removed": (lambda p, _: p.pop("runtimeClassName"), "runtimeClassName is None, not 'gvisor'"),
    "host network": (lambda p, _: p.update(hostNetwork=True), "hostNetwork is set"),
    "the NetworkPolicy label removed": (lambda _, labels: labels.pop(kj.SANDBOX_LABEL), "label modelship.dev/sandbox"),
    "the command rewritten": (lambda p, _: p["containers"][0].update(args=["--evil"]), "command was changed"),
    "the scheduling gate removed": (
        lambda p, _: p.pop("schedulingGates"),
        "scheduling gate modelship.dev/read-back is missing (the pod could start before the bot read it back)",
    ),
    "scratch unbounded": (
        lambda p, _: p["volumes"][1]["emptyDir"].pop("sizeLimit"),
        "volume scratch is not an emptyDir",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_pod_that_lost_a_control_is_refused_and_the_control_named(mutation: str) -> None:
    template = job()["spec"]["template"]
    pod, labels = stored(template)
    change, expected = MUTATIONS[mutation]
    change(pod, labels)
    problems = kj.missing_controls(pod, labels, template)
    assert any(expected in p for p in problems), problems


def framed_log(frames: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    for name, data in frames.items():
        framed.frame(out, name, data)
    return out.getvalue()


def test_frames_written_by_the_supervisor_read_back_byte_for_byte() -> None:
    blob = bytes(range(256)) * 1000
    log = framed_log({"stdout": b"hello\n", "result": blob, "keep/model with space.onnx": b"\x00" * 10})
    assert kj.unframe(log) == {"stdout": b"hello\n", "result": blob, "keep/model with space.onnx": b"\x00" * 10}


@pytest.mark.parametrize(
    ("log", "error"),
    [
        (b"print from a grandchild\n", "not a frame"),
        (
            b"Traceback (most recent call last):\n  File x\nValueError: boom\n",
            "it ends 'ValueError: boom'",
        ),
        (framed_log({"result": b"{}"})[:-20], "not closed"),
        (framed_log({"result": b"{}"}).replace(b"e30=", b"e3w="), "does not match its size and sha256"),
        (framed_log({"result": b"{}"}) * 2, "appears twice"),
    ],
)
def test_a_truncated_forged_or_garbled_log_is_a_frame_error(log: bytes, error: str) -> None:
    with pytest.raises(kj.FrameError, match=error):
        kj.unframe(log)


def test_the_status_frame_must_have_its_shape() -> None:
    assert kj.frame_status({"status": json.dumps({"exit_code": 0, "flooded": None}).encode()})["exit_code"] == 0
    with pytest.raises(kj.FrameError, match="malformed"):
        kj.frame_status({"status": b'{"flooded": "/etc/passwd"}'})
    with pytest.raises(kj.FrameError, match="no readable status"):
        kj.frame_status({})


def test_a_stuck_pod_says_why() -> None:
    pulling = {
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "inputs", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}
            ],
        }
    }
    assert kj.start_problem(pulling) == "container inputs: ImagePullBackOff: not found"
    init_failed = {
        "status": {
            "phase": "Failed",
            "initContainerStatuses": [{"name": "inputs", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}],
        }
    }
    assert "init container exited 2" in str(kj.start_problem(init_failed))
    oom = {
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "sandbox", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
            ],
        }
    }
    assert kj.start_problem(oom) is None and kj.pod_outcome(oom) == ("Failed", 137, "OOMKilled")


def test_owner_names_become_label_values() -> None:
    assert kj.valid_owner("modelship-7d9f/replica:1") == "modelship-7d9f-replica-1"
    with pytest.raises(ValueError, match="label value"):
        kj.valid_owner("///")


def test_review_inputs_go_to_a_repository_of_their_own_tagged_by_owner_and_run() -> None:
    assert kj.inputs_repository("registry.local:5000/team/modelship:1.4") == "team/modelship/review-inputs"
    assert kj.inputs_repository(DIGEST) == "modelship/review-inputs"
    assert kj.inputs_tag("bot-0", "0123456789ab") == "bot-0-0123456789ab"
    assert kj.owned_inputs_tag("bot-0-0123456789ab", "bot-0")
    # Another instance whose name extends ours, a tag someone else pushed, a longer run id: never ours.
    others = ("bot-0-a-0123456789ab", "bot-0-latest", "bot-0-0123456789abc", "bot-00123456789ab", "bot-1-0123456789ab")
    for tag in others:
        assert not kj.owned_inputs_tag(tag, "bot-0"), tag
    with pytest.raises(ValueError, match="12 hex digits"):
        kj.inputs_tag("bot-0", "../x")
