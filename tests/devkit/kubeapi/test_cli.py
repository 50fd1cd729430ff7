"""`python -m devkit kubeapi` serves the stand-in and writes a kubeconfig the official client uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes
import pytest

pytestmark = pytest.mark.slow  # a fresh interpreter importing the dev kit: seconds on a loaded machine

ROOT = Path(__file__).resolve().parents[3]


def test_python_m_devkit_kubeapi_serves_until_stopped_with_a_working_kubeconfig(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    command = [sys.executable, "-m", "devkit", "kubeapi", "--no-kubelet", "--kubeconfig", str(config)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            assert "kubeapi listening on http://127.0.0.1:" in banner and str(config) in banner
            client = kubernetes.config.new_client_from_config(str(config))
            names = [n.metadata.name for n in kubernetes.client.CoreV1Api(client).list_namespace().items]
            assert names == ["default", "kube-public", "kube-system"]
            client.close()
        finally:
            process.terminate()
            code = process.wait(timeout=20)
    assert code == 0
