"""Review inputs as one image layer: packed deterministically, pushed on top of the product image by digest,
and copied into the pod's inputs volume by the init container the image runs."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import secrets
import tarfile
from pathlib import Path

import docker
import pytest

from bot.artifacts.registry import OciRegistry
from bot.sandbox import kube_jobs
from bot.sandbox.kube_inputs import InputsError, copy_tree, main, write_layer
from bot.sandbox.runner import Mount


def tree(root: Path) -> list[Mount]:
    repo = root / "repo"
    (repo / "models").mkdir(parents=True)
    (repo / "models" / "model.onnx").write_bytes(b"\x08\x01onnx")
    (repo / "data.csv").write_text("a,b\n1,2\n")
    (repo / "latest").symlink_to("models/model.onnx")
    (root / "spec.json").write_text('{"repo_dir": "/inputs/repo"}')
    return [Mount(repo, "/inputs/repo"), Mount(root / "spec.json", "/inputs/spec.json")]


def test_the_layer_is_deterministic_and_holds_the_inputs_under_the_staged_directory(tmp_path: Path) -> None:
    mounts = tree(tmp_path)
    first, second = io.BytesIO(), io.BytesIO()
    diff_id, size = write_layer(mounts, first)
    assert write_layer(mounts, second) == (diff_id, size) and first.getvalue() == second.getvalue()
    raw = gzip.decompress(first.getvalue())
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest() and size == len(raw)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == [
        "modelship-review",
        "modelship-review/repo",
        "modelship-review/repo/data.csv",
        "modelship-review/repo/latest",
        "modelship-review/repo/models",
        "modelship-review/repo/models/model.onnx",
        "modelship-review/spec.json",
    ]
    assert members["modelship-review/repo/latest"].issym() and members["modelship-review/repo/latest"].mtime == 0


def test_a_run_without_inputs_still_gets_its_staged_directory() -> None:
    with tarfile.open(fileobj=io.BytesIO(_layer([]))) as tar:
        assert [m.name for m in tar.getmembers()] == ["modelship-review"]


def test_an_input_outside_inputs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputsError, match="not under /inputs"):
        write_layer([Mount(tmp_path, "/etc/evil")], io.BytesIO())


def test_the_init_copy_keeps_links_as_links_and_files_read_only(tmp_path: Path) -> None:
    mounts = tree(tmp_path / "src")
    staged = tmp_path / "staged"
    with tarfile.open(fileobj=io.BytesIO(_layer(mounts))) as tar:
        tar.extractall(staged, filter="tar")
    dest = tmp_path / "inputs"
    dest.mkdir()
    assert main(["--from", str(staged / "modelship-review"), "--to", str(dest)]) == 0
    assert (dest / "repo" / "models" / "model.onnx").read_bytes() == b"\x08\x01onnx"
    assert os.readlink(dest / "repo" / "latest") == "models/model.onnx"
    assert (dest / "spec.json").stat().st_mode & 0o777 == 0o444
    assert copy_tree(staged / "modelship-review", tmp_path / "again") == 3
    assert main(["--from", str(staged / "modelship-review"), "--to", str(dest)]) == 0  # a restarted copy
    assert main(["--from", str(tmp_path / "missing"), "--to", str(dest)]) == 2


def _layer(mounts: list[Mount]) -> bytes:
    out = io.BytesIO()
    write_layer(mounts, out)
    return gzip.decompress(out.getvalue())


@pytest.mark.slow
async def test_the_pushed_image_runs_the_copy_from_the_layer_as_nobody_without_network(
    tmp_path: Path, product_image: str, registry_host: str, podman_url: str
) -> None:
    registry = OciRegistry(registry_host, insecure=True)
    layer = tmp_path / "inputs.tar.gz"
    with layer.open("wb") as out:
        diff_id, _ = write_layer(tree(tmp_path / "src"), out)
    image = await registry.push_image_layer(product_image, layer, diff_id)
    assert image.startswith(product_image.rsplit(":", 1)[0] + "@sha256:")
    assert await registry.push_image_layer(product_image, layer, diff_id) == image  # same inputs, same digest
    client = docker.DockerClient(base_url=podman_url)
    # podman's own pull endpoint (as the stand-in kubelet pulls): the Docker one cannot skip TLS for the test registry
    pulled = client.api.post(
        client.api.base_url + "/v4.0.0/libpod/images/pull",
        params={"reference": image, "tlsVerify": "false", "quiet": "true"},
    )
    assert pulled.status_code == 200 and '"error"' not in pulled.text, pulled.text
    output = client.containers.run(
        image,
        ["python", "-m", "bot.sandbox.kube_inputs", "--from", "/modelship-review", "--to", "/inputs"],
        user="65534:65534",
        read_only=True,
        network_disabled=True,
        network_mode="none",
        cap_drop=["ALL"],
        tmpfs={"/inputs": "size=16m,mode=1777"},
        remove=True,
    )
    assert b"staged 3 input files in /inputs" in output


@pytest.mark.slow
async def test_inputs_pushed_to_their_own_repository_are_whole_images_deleted_by_digest_alone(
    tmp_path: Path, product_image: str, registry_host: str, podman_url: str
) -> None:
    registry = OciRegistry(registry_host, insecure=True)
    repository = f"t{secrets.token_hex(4)}/{kube_jobs.INPUTS_REPOSITORY_SUFFIX}"
    layer = tmp_path / "inputs.tar.gz"
    with layer.open("wb") as out:
        diff_id, _ = write_layer(tree(tmp_path / "src"), out)
    first, second = [
        await registry.push_image_layer(
            product_image, layer, diff_id, repository=repository, tag=f"bot-{run}", labels={kube_jobs.INPUTS_LABEL: run}
        )
        for run in ("0123456789ab", "ba9876543210")
    ]
    assert first != second  # equal inputs, yet each run's own manifest: deleting one never takes the other
    assert sorted(await registry.tags(repository)) == ["bot-0123456789ab", "bot-ba9876543210"]
    assert await registry.resolve(f"{registry_host}/{repository}:bot-0123456789ab") == first.split("@")[1]
    client = docker.DockerClient(base_url=podman_url)
    pulled = client.api.post(  # the base's blobs were mounted into the repository: the image pulls whole
        client.api.base_url + "/v4.0.0/libpod/images/pull",
        params={"reference": first, "tlsVerify": "false", "quiet": "true"},
    )
    assert pulled.status_code == 200 and '"error"' not in pulled.text, pulled.text
    client.api.remove_image(first)

    assert await registry.delete_manifest(first) is True
    assert await registry.tags(repository) == ["bot-ba9876543210"]  # its tag went with it
    assert await registry.resolve(first) is None and await registry.delete_manifest(first) is False
    assert await registry.has_manifest(second) and await registry.has_manifest(product_image)
    assert await registry.delete_manifest(second) is True
    assert await registry.tags(f"t{secrets.token_hex(4)}/never-pushed") == []
