"""A cache must never change an answer (issue 27, docs/review.md): on random edits of a small
repository, `tms check --base` findings and `tms plan` (markdown and JSON) computed through the
parse cache and the narrowed rendering are the same as a full run's (`--no-cache`), whether the
cache is cold (first run) or warm (read back from disk)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import copy_example
from tms_stack.commands.admin_changes import changed_files_git
from tms_stack.commands.check import check_loaded, load_base, run_check
from tms_stack.commands.plan import build_plan, render_markdown
from tms_stack.logic.pool_lock import compute
from tms_stack.repo.answers import Answers
from tms_stack.repo.basetree import checkout_scratch
from tms_stack.repo.loader import load_repository
from tms_stack.repo.lockfile import read_lock, write_lock
from tms_stack.repo.parsecache import ParseCache
from tms_stack.rules import LeaseRuleMemo

NOW = datetime(2026, 11, 22, tzinfo=UTC)
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
# Times after NOW a kept answer is asked about: the example's leases expire between 2026-12 and
# 2027-03 (the minimum and maximum lifetimes move those instants by days to a year).
LATER = [timedelta(0), timedelta(minutes=5), timedelta(days=9), timedelta(days=40), timedelta(days=400)]
LEASES = ["chat-embed", "chat-small", "fraud-detector", "image-classifier", "ranker", "text-ensemble"]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


def _sub(old: str, new: str) -> Callable[[str], str]:
    return lambda text: text.replace(old, new, 1)


# Edits a pull request makes (and a few it should not): each names a lease and a text change.
EDITS: list[tuple[str, Callable[[str], str]]] = [
    ("fraud-detector", _sub("gpu: 2,", "gpu: 3,")),
    ("fraud-detector", _sub("cpu: 4,", "cpu: 40,")),                           # over the limit
    ("fraud-detector", _sub("names: [fraud]", "names: [fraud, risk]")),
    ("fraud-detector", _sub("names: [fraud]", "names: [text]")),                # taken by text-ensemble
    ("text-ensemble", _sub("names: [text, nlp-latest]", "names: [nlp-latest]")),
    ("text-ensemble", _sub("expires: 2027-03-01T09:00:00Z", "expires: 2026-11-21T09:00:00Z")),  # expired
    ("image-classifier", _sub("expires: 2027-01-15T12:00:00Z", "expires: 2027-01-16T12:00:00Z")),
    ("image-classifier", _sub("owner: team-vision", "owner: team-risk")),
    ("chat-embed", _sub("quota: 5", "quota: 3")),
    ("chat-small", _sub("name: shared-t4-pool, quota: 2", "name: cpu_inference_pool, quota: 1")),
    ("ranker", _sub("quota: 1}", "quota: 2}")),
    ("ranker", _sub("kind: Lease", "kind: Lease\nbogus: 1")),                   # schema error
    ("chat-small", _sub("models:", "models: [")),                              # broken YAML
]


def _new_lease(name: str) -> str:
    return (f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata: {{name: {name}, owner: team-risk}}\n"
            "spec:\n  models: [{name: asr, uri: 'model://s3-models/speech/asr'}]\n"
            "  expires: 2026-12-20T12:00:00Z\n  triton: {resources: {gpu: 1}}\n")


Change = tuple[str, int]
changes = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, len(EDITS) - 1)),
    st.tuples(st.just("remove"), st.integers(0, len(LEASES) - 1)),
    st.tuples(st.just("add"), st.integers(0, 2)),
    st.tuples(st.just("budget"), st.integers(0, 1)),
    st.tuples(st.just("max-cpu"), st.just(0)),
    st.tuples(st.just("relock"), st.just(0)),
)


def apply(repo: Path, change: Change) -> None:
    what, n = change
    if what == "edit":
        name, edit = EDITS[n]
        path = repo / "leases" / f"{name}.yaml"
        if path.exists():
            path.write_text(edit(path.read_text()))
    elif what == "remove":
        (repo / "leases" / f"{LEASES[n]}.yaml").unlink(missing_ok=True)
    elif what == "add":
        (repo / "leases" / f"speech-{n}.yaml").write_text(_new_lease(f"speech-{n}"))
    elif what == "budget":
        limits = repo / "policies" / "limits.yaml"
        limits.write_text(limits.read_text().replace("gpus: 8,", "gpus: 1," if n else "gpus: 9,", 1))
    elif what == "max-cpu":                     # a policy the per-lease rules read
        limits = repo / "policies" / "limits.yaml"
        limits.write_text(limits.read_text().replace("maximum: {cpu: 16,", "maximum: {cpu: 5,", 1))
    elif what == "relock":
        try:
            result = compute(load_repository(repo), read_lock(repo))
        except Exception:  # noqa: BLE001 - a repository that cannot be locked keeps its lock
            return
        if not result.unplaced:
            write_lock(repo, result.lock)


@contextmanager
def cache_at(folder: Path) -> Iterator[None]:
    saved = os.environ.get("TMS_CACHE_DIR")
    os.environ["TMS_CACHE_DIR"] = str(folder)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TMS_CACHE_DIR"]
        else:
            os.environ["TMS_CACHE_DIR"] = saved


def _plan(repo: Path, cache: bool) -> tuple[str, str]:
    plan = build_plan(repo, "main", None, NOW, cache=cache)
    return render_markdown(plan), json.dumps(dataclasses.asdict(plan), sort_keys=True, default=str)


def _check(repo: Path, base_root: Path, cache: ParseCache | None, now: datetime = NOW,
           answers: Answers | None = None) -> list[str]:
    """The head judged against the base, then the base itself (as `tms plan` checks them: with the
    cache, the base's check reuses the head's per-lease findings; with `answers`, both answers may
    come from an earlier command's, repo/answers.py)."""
    read = cache.read if cache else None
    memo = LeaseRuleMemo() if cache else None
    base = load_base(repo, base_root, "main", changed_files_git(repo, "main"), read=read)
    head = run_check(repo, now, base=base, read=read, memo=memo, answers=answers)
    before = check_loaded(base.repo, now, memo=memo, answers=answers)
    return [f"{d.location()} {d.severity} {d.rule} {d.message}" for r in (head, before) for d in r.all()] + [
        str(head.exit_code), str(before.exit_code)]


@settings(max_examples=int(os.environ.get("TMS_PROPERTY_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(changes, min_size=1, max_size=4), st.sampled_from(LATER))
def test_incremental_review_equals_a_full_one(edits: list[Change], later: timedelta) -> None:
    with tempfile.TemporaryDirectory(prefix="tms-incremental-") as tmp:
        repo = copy_example(Path(tmp) / "repo")
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "base")
        for change in edits:
            apply(repo, change)
        base_root = Path(tmp) / "base"
        base_root.mkdir()
        checkout_scratch(repo, "main", base_root)
        with cache_at(Path(tmp) / "cache"):
            full_plan = _plan(repo, cache=False)
            full_check = _check(repo, base_root, None)
            assert not (Path(tmp) / "cache" / "entries.pack").exists(), "--no-cache wrote the cache"
            cold_plan = _plan(repo, cache=True)      # parses everything and writes the pack
            assert (Path(tmp) / "cache" / "entries.pack").exists()
            warm_plan = _plan(repo, cache=True)      # reads the pack back
            warm = ParseCache()
            warm_check = _check(repo, base_root, warm)
            assert warm.misses == 0 and warm.hits > 0
            # Both checks' answers kept at NOW (repo/answers.py) are read back by the same checks,
            # and a check at another time uses them only where no expiry lies between.
            first = Answers(ParseCache())
            _check(repo, base_root, first.cache, answers=first)
            kept = Answers(ParseCache())
            kept_check = _check(repo, base_root, kept.cache, answers=kept)
            assert first.misses == 2 and kept.hits == 2 and kept.misses == 0, (first.misses, kept.hits, kept.misses)
            full_later = _check(repo, base_root, None, NOW + later)
            later_cache = ParseCache()
            kept_later = _check(repo, base_root, later_cache, NOW + later, Answers(later_cache))
    assert cold_plan == full_plan
    assert warm_plan == full_plan
    assert warm_check == full_check
    assert kept_check == full_check
    assert kept_later == full_later
