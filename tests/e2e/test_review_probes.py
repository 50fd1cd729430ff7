"""Hostile model PRs, end to end: devhub, real git over HTTP, the real bot, the real podman sandbox.

Each probe arrives the way an attacker would send it — a train command in the repository, or a
crafted model file — and must come back as a failed evaluation on the PR that says why, with the
host untouched. Probes that end a sandbox run (timeout, memory, output flood, result symlink) get
a PR of their own; probes a model survives share one PR, one sandbox run per side.
"""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from devkit.devhub.githttp import RefUpdate
from devkit.devhub.gitstore import ZERO_SHA
from tests.e2e.conftest import (
    TINY_DATA,
    ReviewWorld,
    pickle_running,
    section,
    yaml_config,
    yaml_model,
)
from tests.fixtures.sandbox_backend import BACKENDS

# One suite, both backends: every probe runs on the Docker Engine sandbox and on Kubernetes Jobs.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("sandbox_backend", BACKENDS, indirect=True, scope="module"),
]

CONTAINED = "acme/contained"  # probes a model survives, one PR
TIMEOUT, MEMORY, FLOOD, SYMLINK = "acme/sleeper", "acme/hog", "acme/flood", "acme/symlink"
PICKLE_POLICY = "acme/pickle-policy"
FORGED, GREEDY, LINKED = "acme/forged", "acme/greedy", "acme/linked"
MORE_DATA = TINY_DATA + b"0.3,0.7,0\n"  # the PR's change under data/**, so that a review runs


def outward_ip() -> str:
    """The host's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(("1.1.1.1", 53))
        except OSError:
            return "127.0.0.1"
        return str(udp.getsockname()[0])


def script(code: str) -> bytes:
    return textwrap.dedent(code).lstrip().encode()


@dataclass(frozen=True)
class Host:
    """What the probes aim at on the host: files that must never appear or change, a port never reached."""

    root: Path
    listener: socket.socket

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    @property
    def write_sentinel(self) -> Path:
        return self.root / "written-by-a-probe"

    @property
    def pickle_sentinel(self) -> Path:
        return self.root / "written-by-a-pickle"

    @property
    def secret(self) -> Path:
        return self.root / "host-secret.json"

    def untouched(self) -> bool:
        return (
            not self.write_sentinel.exists()
            and not self.pickle_sentinel.exists()
            and self.secret.read_text() == '{"leaked": true}'
        )


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    root = tmp_path_factory.mktemp("host")
    (root / "host-secret.json").write_text('{"leaked": true}')
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    listener.setblocking(False)
    try:
        yield Host(root, listener)
    finally:
        listener.close()


def contained_repo(host: Host) -> dict[str, bytes]:
    """Probes that fail one model each: the other models (and the run) carry on."""
    network = f"""
        import socket, sys
        blocked = []
        for ip in ("127.0.0.1", "{outward_ip()}", "1.1.1.1"):
            try:
                socket.create_connection((ip, {host.port}), timeout=3).close()
                print("reached", ip)
                sys.exit(0)
            except OSError as exc:
                blocked.append(f"{{ip}}: {{exc.strerror}}")
        sys.exit("network probe blocked: " + "; ".join(blocked))
    """
    writes = f"""
        import sys
        targets = ["/inputs/repo/data/eval.csv", "/opt/modelship/pipelines/evil.py", "/etc/evil",
                   "{host.write_sentinel}"]
        refused = []
        for path in targets:
            try:
                open(path, "a").write("pwned")
            except OSError as exc:
                refused.append(f"{{path}}: {{exc.strerror}}")
        sys.exit(f"{{len(refused)}} of {{len(targets)}} writes refused: " + "; ".join(refused))
    """
    fork_bomb = """
        import os, sys, time
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(5)
                    os._exit(0)
                children += 1
        except OSError as exc:
            sys.exit(f"fork bomb stopped after {children} processes: {exc.strerror}")
    """
    # Opening the pickle tries the host sentinel first; only a sandboxed load fails and says so.
    payload = pickle_running(
        f"try:\n"
        f"    open({str(host.pickle_sentinel)!r}, 'w').write('pwned')\n"
        f"except OSError as exc:\n"
        f"    raise RuntimeError('pickle payload ran inside the sandbox; host sentinel unreachable: ' + exc.strerror)\n"
    )
    models = [
        yaml_model("network", train="python probes/network.py"),
        yaml_model("writes", train="python probes/writes.py"),
        yaml_model("forkbomb", train="python probes/forkbomb.py"),
        yaml_model("pickled", path="models/evil.pkl", allow_pickle=True),
        yaml_model("disguised", path="models/evil.onnx"),  # the same pickle, posing as ONNX
    ]
    return {
        ".modelship.yml": yaml_config(models),
        "data/eval.csv": TINY_DATA,
        "probes/network.py": script(network),
        "probes/writes.py": script(writes),
        "probes/forkbomb.py": script(fork_bomb),
        "models/evil.pkl": payload,
        "models/evil.onnx": payload,
    }


class _Eval:
    def __init__(self, expression: str) -> None:
        self.expression = expression

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return eval, (self.expression,)


def pickled_model(code: str = "") -> bytes:
    """A pickle that runs ``code`` and then IS a working classifier on TINY_DATA's two features."""
    import pickle

    model = (
        "__import__('sklearn.dummy', fromlist=['x']).DummyClassifier(strategy='most_frequent')"
        ".fit([[0, 0], [1, 1], [1, 0]], [0, 1, 1])"
    )
    return pickle.dumps(_Eval(f"(exec({code!r}), {model})[1]"))


# Loaded with allow_pickle, the model owns the run: at exit it rewrites the result so the review
# reports a model hash of its choosing (what deploy would pin, had the bot trusted it).
FORGE = """
import atexit, json, os
def forge(json=json):
    path = '/out/result.json'
    document = json.load(open(path))
    for model in document['evaluation']['models']:
        if model.get('model'):
            model['model']['sha256'] = 'f' * 64
    json.dump(document, open(path, 'w'))
atexit.register(forge)
os._exit = lambda code, forge=forge, real=os._exit: (forge(), real(code))
"""


async def push_symlink(world: ReviewWorld, repo: str, branch: str, path: str, target: str) -> None:
    """Commit a symbolic link on top of main in devhub's bare repository (scripted pushes carry only files)."""
    git_dir = world.hub.git.path(repo)
    env = {**os.environ, "GIT_INDEX_FILE": str(world.tmp / f"index-{branch}"), "GIT_DIR": str(git_dir)}

    def git(*args: str, data: str | None = None) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=alice", "-c", "user.email=alice@example.com", *args],
            env=env,
            input=data,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("read-tree", "refs/heads/main")
    blob = git("hash-object", "-w", "--stdin", data=target)
    git("update-index", "--add", "--cacheinfo", f"120000,{blob},{path}")
    commit = git("commit-tree", git("write-tree"), "-p", "refs/heads/main", "-m", "A link out of the tree")
    git("update-ref", f"refs/heads/{branch}", commit)
    await world.hub.pushed(repo, [RefUpdate(f"refs/heads/{branch}", ZERO_SHA, commit)], world.hub.account("alice"))


def run_ending_repo(model: str, sandbox: str, **entry: Any) -> dict[str, bytes]:
    return {
        ".modelship.yml": yaml_config([yaml_model(model, **entry)], sandbox=sandbox),
        "data/eval.csv": TINY_DATA,
    }


@dataclass(frozen=True)
class Probed:
    world: ReviewWorld
    host: Host
    numbers: dict[str, int]

    def comment(self, repo: str) -> str:
        return self.world.comment(repo, self.numbers[repo])

    def conclusion(self, repo: str) -> str | None:
        run = self.world.check_run(repo, self.numbers[repo])
        assert run.status == "completed"
        return run.conclusion


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def probed(review_world: ReviewWorld, host: Host) -> AsyncIterator[Probed]:
    world = review_world
    hog = pickle_running("hog = []\nwhile True:\n    hog.append(b'x' * (16 << 20))\n")
    flood = pickle_running("import os\nfor _ in range(100):\n    os.write(1, b'x' * (1 << 20))\n")
    # At exit, after the pipeline wrote its result, swap the result for a link to a host file, however
    # the process leaves: through os._exit (the pipelines skip the interpreter's teardown) or atexit.
    # (exec runs in the unpickler's frame: callbacks get what they need as defaults, not closures.)
    swap = pickle_running(
        "import atexit\n"
        "swap = lambda os=__import__('os'): (os.remove('/out/result.json'), "
        f"os.symlink({str(host.secret)!r}, '/out/result.json'))\n"
        "atexit.register(swap)\n"
        "__import__('os')._exit = lambda code, swap=swap, real=__import__('os')._exit: (swap(), real(code))\n"
    )
    sandbox = "{cpus: 1, memory: 512m, timeout: 300s}"
    pickled = {"path": "models/model.pkl", "allow_pickle": True}
    prs = {
        # First in the queue: podman sends a log stream's headers only once the container writes,
        # and the runner's log reader gives up after the docker client's 60 s timeout, so a flood
        # after a minute of silence on a busy machine would slip past the output cap.
        FLOOD: (run_ending_repo("flood", sandbox, **pickled), {"models/model.pkl": flood}),
        CONTAINED: (contained_repo(host), {"data/eval.csv": MORE_DATA}),
        TIMEOUT: (
            run_ending_repo(
                "sleeper", "{cpus: 1, memory: 1g, timeout: 5s}", train="python -c 'import time; time.sleep(600)'"
            ),
            {"data/eval.csv": MORE_DATA},
        ),
        MEMORY: (run_ending_repo("hog", sandbox, **pickled), {"models/model.pkl": hog}),
        SYMLINK: (run_ending_repo("symlink", sandbox, **pickled), {"models/model.pkl": swap}),
        # Without allow_pickle the policy itself refuses a .pkl: nothing is ever unpickled.
        PICKLE_POLICY: (
            {
                ".modelship.yml": yaml_config([yaml_model("evil", path="models/evil.pkl")]),
                "data/eval.csv": TINY_DATA,
            },
            {"models/evil.pkl": pickle_running(f"open({str(host.pickle_sentinel)!r}, 'w').write('pwned')")},
        ),
    }
    pickled_base = {"models/model.pkl": pickled_model()}
    prs[FORGED] = (
        run_ending_repo("forged", sandbox, **pickled) | pickled_base,
        {"models/model.pkl": pickled_model(FORGE)},
    )
    greedy = "{cpus: 64, memory: 1t, timeout: 6h}"
    prs[GREEDY] = (run_ending_repo("greedy", greedy, **pickled) | pickled_base, {"data/eval.csv": MORE_DATA})
    numbers = {repo: await world.open_pr(repo, base, head) for repo, (base, head) in prs.items()}
    await world.hub.create_repo(LINKED, run_ending_repo("linked", sandbox, **pickled) | pickled_base)
    await world.hub.install("acme", [LINKED])
    world.hub.set_permission(LINKED, "alice", "write")
    await push_symlink(world, LINKED, "change", "data/leak.csv", "/etc/passwd")
    numbers[LINKED] = await world.hub.open_pr(LINKED, "change", title="Change the data")
    await world.bot.idle(timeout=600)
    yield Probed(world, host, numbers)


def test_network_access_is_unreachable_and_the_host_port_is_never_reached(probed: Probed) -> None:
    body = section(probed.comment(CONTAINED), "network")
    assert "The head model failed to evaluate" in body and "network probe blocked" in body, body
    assert "Network is unreachable" in body
    with pytest.raises(BlockingIOError):
        probed.host.listener.accept()
    assert probed.conclusion(CONTAINED) == "failure"


def test_writes_outside_scratch_are_refused(probed: Probed) -> None:
    body = section(probed.comment(CONTAINED), "writes")
    assert "4 of 4 writes refused" in body and "Read-only file system" in body, body
    assert probed.host.untouched()


def test_a_fork_bomb_stops_at_the_pids_limit(probed: Probed, sandbox_pids_limit: int) -> None:
    body = section(probed.comment(CONTAINED), "forkbomb")
    assert "fork bomb stopped after" in body and "Resource temporarily unavailable" in body, body
    forked = int(body.split("fork bomb stopped after ")[1].split()[0])
    assert 0 < forked < sandbox_pids_limit  # the spec's pids limit (Docker), the node's podPidsLimit (Kubernetes)


def test_an_allowed_pickle_runs_only_inside_the_sandbox(probed: Probed) -> None:
    body = section(probed.comment(CONTAINED), "pickled")
    assert "pickle payload ran inside the sandbox; host sentinel unreachable" in body, body
    assert not probed.host.pickle_sentinel.exists()


def test_a_pickle_posing_as_onnx_is_never_unpickled(probed: Probed) -> None:
    body = section(probed.comment(CONTAINED), "disguised")
    assert "could not load" in body and "models/evil.onnx" in body, body
    assert "pickle payload ran" not in body


def test_a_pickle_model_without_allow_pickle_is_refused_by_the_policy(probed: Probed) -> None:
    body = probed.comment(PICKLE_POLICY)
    assert "is invalid" in body and "| 7 | `models[0].path` |" in body, body
    assert "is a pickle, which runs code when loaded" in body and "allow\\_pickle: true" in body
    assert probed.conclusion(PICKLE_POLICY) == "failure"
    assert not probed.host.pickle_sentinel.exists()


def test_a_ten_minute_sleep_is_killed_at_the_5s_timeout(probed: Probed) -> None:
    body = probed.comment(TIMEOUT)
    assert "timed out after 5 s (sandbox.timeout); the container was killed" in body, body
    run = probed.world.check_run(TIMEOUT, probed.numbers[TIMEOUT])
    assert run.conclusion == "failure" and run.completed_at is not None and run.started_at is not None
    assert run.completed_at - run.started_at < 120


def test_a_memory_bomb_is_reported_as_out_of_memory(probed: Probed) -> None:
    body = probed.comment(MEMORY)
    assert "ran out of memory: killed at the 512 MiB limit (sandbox.memory)" in body, body
    assert probed.conclusion(MEMORY) == "failure"


def test_100_mb_of_stdout_hits_the_output_cap(probed: Probed) -> None:
    body = probed.comment(FLOOD)
    assert "stdout exceeded the 1 MiB output cap; the run was stopped" in body, body
    assert probed.conclusion(FLOOD) == "failure"


def test_a_result_symlinked_to_a_host_file_is_refused(probed: Probed) -> None:
    body = probed.comment(SYMLINK)
    assert "refused /out/result.json: it is a symbolic link" in body, body
    assert "leaked" not in body
    assert probed.conclusion(SYMLINK) == "failure"
    assert probed.host.untouched()


def test_every_probe_left_one_comment_and_one_failed_check_run(probed: Probed) -> None:
    for repo in set(probed.numbers) - {GREEDY}:  # a greedy but honest repository is clamped, not failed
        assert probed.world.comment(repo, probed.numbers[repo])
        assert probed.conclusion(repo) == "failure", repo


def test_a_forged_model_hash_in_the_sandbox_result_fails_the_review(probed: Probed) -> None:
    body = probed.comment(FORGED)
    assert "the sandbox's result failed the bot's own verification" in body, body
    assert "model `forged`: the sandbox reported sha256 ffffffffffff… for `models/model.pkl`" in body
    run = probed.world.check_run(FORGED, probed.numbers[FORGED])
    assert run.conclusion == "failure"
    assert str(run.output.get("title", "")).startswith("Sandbox result failed verification"), run.output


def test_repository_limits_above_the_servers_maxima_are_lowered_and_said(probed: Probed) -> None:
    body = probed.comment(GREEDY)
    assert "`sandbox.cpus: 64` was lowered to 2, this server's maximum (MODELSHIP_SANDBOX_MAX_CPUS)" in body, body
    assert "`sandbox.memory: " in body and "` was lowered to 4 GiB, this server's maximum" in body
    assert "`sandbox.timeout: 21600s` was lowered to 1800s" in body
    assert probed.conclusion(GREEDY) == "success"  # it still ran, within the server's limits
    runs = probed.world.sandbox.runs
    assert runs and all(s.cpus <= 2 and s.memory_bytes <= 4 << 30 and s.timeout_s <= 1800 for s in runs)


def test_a_symlink_out_of_the_tree_is_a_readable_review_error(probed: Probed) -> None:
    body = probed.comment(LINKED)
    assert "cannot be reviewed" in body and "data/leak.csv" in body and "absolute path" in body, body
    assert "Traceback" not in body
    assert probed.conclusion(LINKED) == "failure"
