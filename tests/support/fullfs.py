"""Run one edit on a full file system and report what it left (issue 22).

`python -m tests.support.fullfs DIR SCENARIO` expects DIR to be a small, empty tmpfs (the test
mounts it with `unshare -m` in a private mount namespace, so nothing outside sees it). It copies
the example repository there, fills the file system to the last byte, runs SCENARIO's command
(the real `tms` CLI in a subprocess, or prune's `apply` for a renewal) and prints one JSON
document: the command's exit code and stderr, and every file of the repository (name -> size)
before and after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import copy_example
from tests.placement.test_lock_merge import LEASE  # a pooled lease of team-assist

SCENARIOS = {
    "create": ["lease", "create", "fresh", "-m", "name=m,uri=model://s3-models/x/m", "--owner", "team-assist",
               "--now", "2026-11-22T00:00:00Z"],
    "renew": ["lease", "renew", "ranker", "--duration", "200d", "--now", "2026-11-22T00:00:00Z"],
    "move": ["lease", "name", "move", "chat", "chat-small", "ranker"],
    "release-pooled": ["lease", "release", "chat-small"],
    "pool-lock": ["pool", "lock", "--no-learn"],
    "prune-renewal": [],
}


def files(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def fill(folder: Path) -> None:
    """Write until the file system has no byte left."""
    with open(folder / "filler", "wb", buffering=0) as out:
        for size in (65536, 4096, 1):  # then the last partial page, byte by byte
            while True:
                try:
                    if not out.write(b"\0" * size):
                        break
                except OSError:
                    break


def main(mount: Path, scenario: str) -> None:
    root = copy_example(mount / "repo")
    # chat-small has the name `chat` (scenario "move"); a lease waiting for the lock ("pool-lock").
    if scenario == "pool-lock":
        (root / "leases" / "extra.yaml").write_text(LEASE.format(name="extra", pool="shared-t4-pool", quota=1))
    before = files(root)
    fill(mount)
    if scenario == "prune-renewal":
        from tms_stack.commands.prune import PruneResult, Renewal
        from tms_stack.commands.prune_apply import apply
        from tms_stack.repo.loader import load_repository

        repo = load_repository(root)
        lease = repo.lease("ranker")
        result = PruneResult(renewed=[Renewal("ranker", "leases/ranker.yaml", lease.spec.expires,
                                              datetime(2027, 3, 1, tzinfo=UTC), lease.spec.expires - lease.spec.expires)])
        try:
            apply(root, repo, result, datetime(2026, 11, 22, tzinfo=UTC))
            code, err = 0, ""
        except Exception as exc:  # noqa: BLE001 - reported to the test as data
            code, err = 1, f"{type(exc).__name__}: {exc}"
    else:
        argv = [sys.executable, "-c", "from tms_stack.cli import main; main()", *SCENARIOS[scenario],
                "--root", str(root)]
        out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TMS_OWNER": "team-assist"})
        code, err = out.returncode, out.stderr
    (mount / "filler").unlink()
    after = files(root)
    check = subprocess.run([sys.executable, "-c", "from tms_stack.cli import main; main()", "check", str(root),
                            "--now", "2026-11-22T00:00:00Z"], capture_output=True, text=True)
    contents = {name: (root / name).read_text(errors="replace") for name in after}
    print(json.dumps({"code": code, "stderr": err, "before": before, "after": after,
                      "check": check.returncode, "check_out": check.stdout[-2000:], "contents": contents}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
