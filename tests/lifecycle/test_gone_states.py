"""`tms lease status` of a lease whose file is gone (issue 25 #3): git history says why. The real
`tms prune` deletes an expired lease and its message is committed as the prune workflow does
(`git commit -F`, also after a squash merge of prune's pull request) -> Expired; a person's
`tms lease release` -> Released."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT, copy_example

TMS = str(ROOT / ".venv" / "bin" / "tms")
ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.com", "KUBECONFIG": "/nonexistent"}


def run(repo: Path, *args: str) -> str:
    out = subprocess.run(list(args), cwd=repo, env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def status(repo: Path, name: str) -> dict:
    return json.loads(run(repo, TMS, "lease", "status", name, "-o", "json"))  # type: ignore[no-any-return]


def test_expired_by_prune_released_by_a_person(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "fleet")
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "base")
    # image-classifier (no autoRenew) expires 2027-01-15T12:00:00Z: prune deletes it after that.
    message = tmp_path / "message.txt"
    run(repo, TMS, "prune", "--now", "2027-01-16T00:00:00Z", "--message-file", str(message))
    assert not (repo / "leases" / "image-classifier.yaml").exists()
    run(repo, "git", "add", "-A", "--", "leases", "pools")
    run(repo, "git", "commit", "-qF", str(message))
    gone = status(repo, "image-classifier")
    assert gone["state"] == "Expired" and gone["removed"], gone
    assert run(repo, TMS, "lease", "status", "image-classifier", "-z").startswith(
        "lease:image-classifier state:Expired removed:")

    run(repo, TMS, "lease", "release", "ranker")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "release ranker")
    released = status(repo, "ranker")
    assert released["state"] == "Released" and released["released"], released
    assert "State: Released" in run(repo, TMS, "lease", "status", "ranker")


def test_a_squash_merged_prune_pull_request_still_reads_as_expired(tmp_path: Path) -> None:
    """PRUNE_MODE=pr: GitHub's squash commit quotes prune's message as a bullet; a commit that
    merely mentions prune for another lease is a release."""
    from datetime import UTC, datetime

    from tms_stack.commands.prune import PruneResult, removed_for_expiry

    result = PruneResult(expired=[("chat-embed", "leases/chat-embed.yaml", datetime(2027, 1, 1, tzinfo=UTC))])
    squash = "tms prune: remove 1 expired lease (#42)\n\n" + "\n".join(
        ("* " + line) if i == 0 else line for i, line in enumerate(result.commit_message().splitlines()))
    assert removed_for_expiry(squash, "chat-embed")
    assert not removed_for_expiry(squash, "chat")  # a name that is only a prefix of a listed one
    assert not removed_for_expiry("release chat-embed after tms prune: renewed it", "chat-embed")
