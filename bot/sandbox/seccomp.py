"""The sandbox's seccomp profile: the engine's default profile, minus namespace creation.

podman's default profile (``/usr/share/containers/seccomp.json``) allows ``unshare``, ``setns``
and ``clone`` with any flags, so a model could create a user namespace and, inside it, gain
capabilities over new namespaces: kernel attack surface nothing in an evaluation needs. This
profile keeps every other rule of the default and denies:

- ``unshare`` and ``setns``: EPERM;
- ``clone`` with any ``CLONE_NEW*`` flag (threads and ``fork`` still work): the profile's default
  action (ENOSYS; libseccomp cannot hold an allow and an errno rule for one syscall's arguments);
- ``clone3``: ENOSYS, so libc falls back to ``clone``, whose flags seccomp can inspect
  (clone3 passes them in memory, out of seccomp's reach; Docker's default does the same).

The generated profile is committed as ``bot/sandbox/seccomp.json``; regenerate it with

    python -m bot.sandbox.seccomp [/usr/share/containers/seccomp.json]

How it reaches the engine differs: Docker's API takes the profile's JSON in ``SecurityOpt``
(``seccomp=<json>``); podman's compatible API (4.3, verified here) takes a PATH there and
answers "file name too long" to JSON, so podman gets the path of the committed file.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

PROFILE = Path(__file__).with_name("seccomp.json")
DEFAULT_SOURCE = Path("/usr/share/containers/seccomp.json")
DENIED = ("unshare", "setns", "clone", "clone3")
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
CLONE_NAMESPACE_FLAGS = 0x7E020000
EPERM, ENOSYS = 1, 38


def harden(default: dict[str, Any]) -> dict[str, Any]:
    """The default profile with namespace creation denied (pure)."""
    profile = copy.deepcopy(default)
    rules = []
    for rule in profile["syscalls"]:
        if rule.get("action") == "SCMP_ACT_ALLOW":
            rule["names"] = [n for n in rule["names"] if n not in DENIED]
        if rule["names"]:
            rules.append(rule)

    def clone_rule(index: int, arches: dict[str, Any]) -> dict[str, Any]:
        # clone's flags are its first argument, except on s390 where the first two are swapped.
        masked = {"index": index, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
        return {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [masked], "comment": "", **arches}

    rules += [
        clone_rule(0, {"includes": {}, "excludes": {"arches": ["s390", "s390x"]}}),
        clone_rule(1, {"includes": {"arches": ["s390", "s390x"]}, "excludes": {}}),
        {
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "args": [],
            "comment": "ENOSYS makes libc fall back to clone, whose flags are checked above",
            "includes": {},
            "excludes": {},
            "errnoRet": ENOSYS,
        },
        {
            "names": ["unshare", "setns"],
            "action": "SCMP_ACT_ERRNO",
            "args": [],
            "comment": "no new namespaces in the sandbox",
            "includes": {},
            "excludes": {},
            "errnoRet": EPERM,
        },
    ]
    profile["syscalls"] = rules
    return profile


def security_opt(engine_is_podman: bool, profile: Path = PROFILE) -> str:
    """The ``SecurityOpt`` entry that applies ``profile`` on this kind of engine."""
    if engine_is_podman:
        return f"seccomp={profile}"
    return "seccomp=" + json.dumps(json.loads(profile.read_text()), separators=(",", ":"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else DEFAULT_SOURCE
    profile = harden(json.loads(source.read_text()))
    PROFILE.write_text(json.dumps(profile, indent=1) + "\n")
    print(f"wrote {PROFILE} from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
