"""Intake benchmark: `modelship serve` (durable, SQLite) next to a bare HMAC+JSON endpoint (the ceiling).

Sends signed 22 KB pull_request deliveries with unique GUIDs over loopback and prints a table:
  - max throughput (wrk, 16 connections, 10 s) with latency p50/p99;
  - ack latency p50/p99 at a fixed 500 deliveries/s (open-loop Python load generator).
Run: `.venv/bin/python bench/intake.py` (or `make bench`). Targets (issue 2): >= 40 % of the
ceiling's throughput on SQLite, p99 ack <= 50 ms at 500 deliveries/s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bot.intake import signature_for
from devkit.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"
DURATION = int(os.environ.get("BENCH_SECONDS", "10"))


def payload_22kb() -> bytes:
    pr = {
        "action": "synchronize",
        "number": 1,
        "pull_request": {
            "number": 1,
            "head": {"sha": "a" * 40, "ref": "feature"},
            "base": {"ref": "main"},
            "body": "x" * 21_500,
            "labels": [{"name": f"l{i}"} for i in range(20)],
        },
        "repository": {"full_name": "acme/churn", "id": 1},
        "installation": {"id": 1},
        "sender": {"login": "alice"},
    }
    body = json.dumps(pr).encode()
    assert 21_000 < len(body) < 23_000, len(body)
    return body


def rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def wrk(port: int, body_file: Path, sig: str, rate: int | None = None) -> tuple[float, float, float]:
    """Closed loop at full speed, or paced to `rate` requests/s over 16 connections (wrk's delay())."""
    script = body_file.with_suffix(".lua")
    pacing = f"delay = function() return {16 * 1000 / rate:.3f} end" if rate else ""
    script.write_text(f"""
wrk.method = "POST"
local f = io.open("{body_file}", "rb"); wrk.body = f:read("*all"); f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "pull_request"
wrk.headers["X-Hub-Signature-256"] = "{sig}"
local n = 0
request = function()
  n = n + 1
  wrk.headers["X-GitHub-Delivery"] = string.format("%d-%d-%d", os.time(), math.random(1, 1e9), n)
  return wrk.format()
end
{pacing}
""")
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c16",
            f"-d{DURATION}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/webhooks/github",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"  warning: {non2xx.group(1)} non-2xx responses on port {port}", file=sys.stderr)
    return rps, pct("50"), pct("99")


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: run `make setup`")
    body = payload_22kb()
    sig = signature_for(SECRET.encode(), body)
    tmp = Path(tempfile.mkdtemp(prefix="modelship-bench-"))
    body_file = tmp / "body.json"
    body_file.write_bytes(body)
    ceiling_port, serve_port = free_port(), free_port()
    env = {
        **os.environ,
        "MODELSHIP_WEBHOOK_SECRET": SECRET,
        "MODELSHIP_DATA_DIR": str(tmp / "data"),
        "MODELSHIP_PORT": str(serve_port),
        "MODELSHIP_GITHUB_APP_ID": "1",
        "MODELSHIP_GITHUB_PRIVATE_KEY": rsa_pem(),
        "MODELSHIP_WORKERS": "0",
        "MODELSHIP_SANDBOX": "off",  # intake only: no review runs
        "MODELSHIP_LOG_LEVEL": "WARNING",
        "MODELSHIP_REPO_ALLOWLIST": "acme/*",
    }
    procs = [
        subprocess.Popen([sys.executable, str(ROOT / "bench" / "ceiling_server.py"), str(ceiling_port), SECRET]),
        subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], env=env, cwd=ROOT),
    ]
    try:
        wait_port(ceiling_port)
        wait_port(serve_port)
        rows = []
        for name, port in (
            ("ceiling (HMAC + JSON only)", ceiling_port),
            ("modelship serve (SQLite, durable)", serve_port),
        ):
            rps, p50, p99 = wrk(port, body_file, sig)
            paced, f50, f99 = wrk(port, body_file, sig, rate=500)
            rows.append((name, rps, p50, p99, paced, f50, f99))
        print(
            f"\nIntake benchmark: signed {len(body) / 1024:.1f} KB pull_request deliveries, loopback, "
            f"{os.cpu_count()} cores, wrk -c16 {DURATION}s\n"
        )
        print(
            f"| {'endpoint':34} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} "
            f"| {'paced req/s':>11} | {'paced p50':>9} | {'paced p99':>9} |"
        )
        print(f"|{'-' * 36}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 13}|{'-' * 11}|{'-' * 11}|")
        for name, rps, p50, p99, paced, f50, f99 in rows:
            print(f"| {name:34} | {rps:8.0f} | {p50:7.2f} | {p99:7.2f} | {paced:11.0f} | {f50:9.2f} | {f99:9.2f} |")
        ratio = rows[1][1] / rows[0][1]
        print(
            f"\nthroughput vs ceiling: {ratio:.0%} (target >= 40 %); p99 ack at 500/s: {rows[1][6]:.1f} ms "
            f"(target <= 50 ms)"
        )
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
