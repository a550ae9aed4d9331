"""Kept answers (tms_stack/repo/answers.py, docs/review.md): a check's answer is read back only
under a key naming everything the rules read, at a time no expiry instant separates from when it
was computed, and only from a file this code wrote under this cache's key. The property test in
test_review_incremental.py compares kept answers with full runs on random edits and times."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tms_stack.commands.check import load_base, run_check
from tms_stack.repo import answers as answers_module
from tms_stack.repo.answers import Answers, answers_for, root_inputs
from tms_stack.repo.loader import load_repository
from tms_stack.repo.parsecache import ParseCache, reader
from tms_stack.rules import check_repository
from tms_stack.rules.context import Ctx
from tms_stack.rules.leases import expiry_instants, lease_rules

NOW = datetime(2026, 11, 22, tzinfo=UTC)
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}


def _check(repo: Path, now: datetime = NOW) -> tuple[list[str], Answers]:
    pc = ParseCache()
    kept = Answers(pc)
    result = run_check(repo, now, read=pc.read, answers=kept)
    return [f"{d.location()} {d.severity} {d.rule} {d.message}" for d in result.all()], kept


def _full(repo: Path, now: datetime = NOW) -> list[str]:
    result = run_check(repo, now)
    return [f"{d.location()} {d.severity} {d.rule} {d.message}" for d in result.all()]


def _answer_files(cache: Path) -> list[Path]:
    return sorted((cache / "answers").iterdir()) if (cache / "answers").is_dir() else []


def test_an_answer_is_kept_and_read_back(example_repo: Path, cache: Path) -> None:
    (example_repo / "leases" / "fraud-detector.yaml").write_text(
        (example_repo / "leases" / "fraud-detector.yaml").read_text().replace("cpu: 4,", "cpu: 40,"))
    first, kept = _check(example_repo)
    assert kept.misses == 1 and kept.hits == 0 and len(_answer_files(cache)) == 1
    again, kept = _check(example_repo)
    assert kept.hits == 1 and again == first == _full(example_repo)
    assert any("cpu" in line for line in again)


@pytest.mark.parametrize("edit", [
    lambda r: (r / "leases" / "ranker.yaml").write_text((r / "leases" / "ranker.yaml").read_text() + "\n"),
    lambda r: (r / "leases" / "ranker.yaml").rename(r / "leases" / "ranker2.yaml"),
    lambda r: (r / "Pulumi.example.yaml").write_text((r / "Pulumi.example.yaml").read_text() + "\n"),
    lambda r: (r / "Pulumi.other.yaml").write_text("config: {}\n"),
    lambda r: (r / "pools" / "placement.lock.yaml").write_text(
        (r / "pools" / "placement.lock.yaml").read_text() + "\n"),
    lambda r: (r / "pools" / "placement.lock.yaml").unlink(),
    lambda r: (r / ".github").mkdir() or (r / ".github" / "CODEOWNERS").write_text("* @someone\n"),
    lambda r: (r / "leases" / "notes.txt").write_text("not a lease\n"),
    lambda r: (r / "leases" / "broken.yaml").write_text("kind: [\n"),
], ids=["lease-bytes", "lease-path", "stack-file", "new-stack-file", "lock", "no-lock", "codeowners",
        "stray-file", "unreadable"])
def test_any_input_a_rule_reads_changes_the_key(example_repo: Path, cache: Path, edit: object) -> None:
    _check(example_repo)
    edit(example_repo)  # type: ignore[operator]
    after, kept = _check(example_repo)
    assert kept.hits == 0 and kept.misses == 1
    assert after == _full(example_repo)


def test_the_time_is_an_input_only_through_the_expiry_instants(example_repo: Path) -> None:
    """Between two times with no instant of `expiry_instants` between them (boundaries included),
    every lease's findings are the same, arriving or not; across each instant some finding changes
    (so no instant is missing and none is idle)."""
    lease = example_repo / "leases" / "ranker.yaml"
    # Far enough out that the admin maximum (365d) is crossed within the times below.
    lease.write_text(lease.read_text().replace("expires: ", "expires: 2028-01-01T00:00:00Z\n#", 1))
    repo = load_repository(example_repo)
    ctx = Ctx(repo)
    instants = expiry_instants(repo)
    assert len(instants) == 3 * len(repo.leases)
    loaded = repo.leases["ranker"]
    own = expiry_instants_of(repo, "ranker")
    assert set(own) <= set(instants)
    times = sorted({t + d for t in own for d in (-timedelta(seconds=1), timedelta(0), timedelta(seconds=1))}
                   | {own[0] - timedelta(days=3 * 365), own[-1] + timedelta(days=365)})

    def answer(now: datetime) -> tuple[list[str], list[str]]:
        return tuple(sorted(f"{d.rule} {d.message}" for d in lease_rules(ctx, "ranker", loaded, now, arriving))
                     for arriving in (False, True))  # type: ignore[return-value]

    for a, b in zip(times, times[1:], strict=False):
        if not any(a <= i <= b for i in own):
            assert answer(a) == answer(b), (a, b)
    for i in own:
        assert answer(i - timedelta(seconds=1)) != answer(i + timedelta(seconds=1)), i


def expiry_instants_of(repo: object, stem: str) -> list[datetime]:
    from tms_stack.repo.loader import Repository

    assert isinstance(repo, Repository)
    only = Repository(root=repo.root, leases={stem: repo.leases[stem]}, limits=repo.limits)
    return expiry_instants(only)


def test_an_answer_is_not_used_across_an_expiry(example_repo: Path, cache: Path) -> None:
    lease = example_repo / "leases" / "ranker.yaml"
    expires = next(line for line in lease.read_text().splitlines() if "expires:" in line).split("expires:")[1].strip()
    when = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    before, _ = _check(example_repo, when - timedelta(minutes=30))  # past the minimum lifetime's instant
    close, kept = _check(example_repo, when - timedelta(minutes=1))
    assert kept.hits == 1 and close == before
    after, kept = _check(example_repo, when + timedelta(minutes=1))
    assert kept.hits == 0 and after == _full(example_repo, when + timedelta(minutes=1)) != before
    assert any("lease.expired" in line and "ranker" in line for line in after)
    # An answer computed on an instant holds at no other time, before or after it.
    on, _ = _check(example_repo, when)
    for moment in (when - timedelta(minutes=1), when + timedelta(seconds=1)):
        found, kept = _check(example_repo, moment)
        assert kept.hits == 0 and found == _full(example_repo, moment)
    assert on != _check(example_repo, when - timedelta(minutes=1))[0]


def test_a_foreign_or_tampered_answer_is_ignored(example_repo: Path, cache: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (example_repo / "leases" / "fraud-detector.yaml").write_text(
        (example_repo / "leases" / "fraud-detector.yaml").read_text().replace("cpu: 4,", "cpu: 40,"))
    right, _ = _check(example_repo)
    [path] = _answer_files(cache)
    good = path.read_bytes()
    # An answer claiming the repository is clean, under the right name, but not this key's MAC.
    forged = bytearray(good)
    forged[-5] ^= 0xFF
    for data in (bytes(forged), good[:40], b"", b"x" * 200):
        path.write_bytes(data)
        found, kept = _check(example_repo)
        assert kept.hits == 0 and found == right
    # A link (to a file that would hang a reader) or a FIFO in its place is not read.
    path.unlink()
    path.symlink_to("/dev/zero")
    found, kept = _check(example_repo)
    assert kept.hits == 0 and found == right
    path.unlink()
    os.mkfifo(path)
    found, kept = _check(example_repo)
    assert kept.hits == 0 and found == right
    path.unlink()
    # A good answer copied under another key's name is not that key's answer.
    path.write_bytes(good)
    clean = example_repo.parent / "clean"
    subprocess.run(["cp", "-r", str(example_repo), str(clean)], check=True)
    (clean / "leases" / "fraud-detector.yaml").write_text(
        (clean / "leases" / "fraud-detector.yaml").read_text().replace("cpu: 40,", "cpu: 4,"))
    _check(clean)
    other = next(p for p in _answer_files(cache) if p != path)
    other.write_bytes(good)
    found, kept = _check(clean)
    assert kept.hits == 0 and found == _full(clean)
    # Another cache key (CI's secret) reads none of this key's answers.
    monkeypatch.setenv("TMS_CACHE_KEY", "another key")
    found, kept = _check(example_repo)
    assert kept.hits == 0 and found == right


def test_no_answers_without_a_persistent_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in ("memory", "off"):
        monkeypatch.setenv("TMS_CACHE", setting)
        assert answers_for(reader()) is None
    monkeypatch.delenv("TMS_CACHE")
    assert answers_for(reader()) is not None
    assert answers_for(None) is None


def test_only_the_newest_answers_are_kept(example_repo: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers_module, "KEEP", 3)
    for n in range(5):
        (example_repo / "leases" / "ranker.yaml").write_text(
            (example_repo / "leases" / "ranker.yaml").read_text() + f"# {n}\n")
        _check(example_repo)
    assert len(_answer_files(cache)) == 3


def test_a_check_reads_no_file_its_key_does_not_name(example_repo: Path, tmp_path: Path) -> None:
    """Every file a check opens while its rules run is one the key covers: a loaded file (by blob
    id), or a stack file or the placement lock of the repository or its base (by bytes). A rule
    that starts reading another file fails this test until repo/answers.py names it."""
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=example_repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=example_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "base"], cwd=example_repo, check=True, env={**os.environ, **GIT_ENV})
    (example_repo / ".github").mkdir()
    (example_repo / ".github" / "CODEOWNERS").write_text("* @someone\n")
    base_root = tmp_path / "base"
    subprocess.run(["cp", "-r", str(example_repo), str(base_root)], check=True)
    (example_repo / "leases" / "ranker.yaml").write_text(
        (example_repo / "leases" / "ranker.yaml").read_text().replace("quota: 1}", "quota: 2}"))
    base = load_base(example_repo, base_root, "main", [("leases/ranker.yaml", "changed")])
    repo = load_repository(example_repo)
    opened: list[str] = []
    watching = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if watching[0] and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            opened.append(os.fsdecode(args[0]))

    sys.addaudithook(hook)   # cannot be removed: it stops recording below
    try:
        check_repository(repo, NOW, base)
    finally:
        watching[0] = False
    named = set()
    for tree in (repo, base.repo):
        named |= {str(p) for p in root_inputs(tree.root)}
        named |= {str(tree.root / loaded.file) for table in (tree.leases, tree.pools, tree.policy_files)
                  for loaded in table.values()}
    package = str(Path(answers_module.__file__).resolve().parents[1])
    read = {p for p in opened if not p.startswith((package, sys.prefix, sys.base_prefix)) and not p.endswith(".pyc")}
    assert read, "the hook saw no file: the test would pass whatever the rules read"
    assert read <= named, sorted(read - named)


TMS = [sys.executable, "-c", "from tms_stack.cli import main; main()"]  # this tree's CLI


def test_the_plan_reuses_the_checks_answer_and_every_review_of_a_base_the_bases(
        example_repo: Path, cache: Path) -> None:
    """Through the CLI, as a review runs: `tms plan --base main` after `tms check --base main` keeps
    one more answer (the base's), not two (the head's is the check's); a second review of the same
    base keeps none; `tms render` of a checked tree keeps one (judged without a base). Each
    output equals the one without any cache."""
    git = lambda *a: subprocess.run(["git", *a], cwd=example_repo, check=True, capture_output=True,  # noqa: E731
                                    env={**os.environ, **GIT_ENV})
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "base")
    git("checkout", "-qb", "pr")
    lease = example_repo / "leases" / "fraud-detector.yaml"
    lease.write_text(lease.read_text().replace("gpu: 2,", "gpu: 3,"))
    git("commit", "-qam", "one lease")
    now = ["--now", "2026-11-22T00:00:00Z"]

    def tms(*args: str, env: dict[str, str] | None = None) -> str:
        out = subprocess.run([*TMS, *args], cwd=example_repo, capture_output=True, text=True, timeout=300,
                             env={**os.environ, **(env or {})})
        assert out.returncode in (0, 1), out.stdout + out.stderr
        return out.stdout

    check = tms("check", "--base", "main", *now)
    assert len(_answer_files(cache)) == 1
    plan = tms("plan", "--base", "main", *now)
    assert len(_answer_files(cache)) == 2
    assert tms("check", "--base", "main", *now) == check and tms("plan", "--base", "main", *now) == plan
    assert len(_answer_files(cache)) == 2
    off = {"TMS_CACHE": "off"}
    assert tms("check", "--base", "main", *now, env=off) == check
    assert tms("plan", "--base", "main", *now, env=off) == plan
    out = example_repo.parent / "out"
    rendered = tms("render", "--out", str(out), *now)
    assert len(_answer_files(cache)) == 3
    files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    tms("render", "--out", str(out), *now)
    assert len(_answer_files(cache)) == 3
    plain = example_repo.parent / "plain"
    assert tms("render", "--out", str(plain), *now, env=off) == rendered.replace(str(out), str(plain))
    assert {p.relative_to(plain): p.read_bytes() for p in plain.rglob("*") if p.is_file()} == files
