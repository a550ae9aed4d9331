"""The parse cache (tms_stack/repo/parsecache.py, docs/review.md) is used only when it is this
code's own, whole and untouched: a corrupted, truncated, foreign-version, foreign-key or tampered
pack is ignored (every file is parsed again, with the same findings), and nothing in a pack is
unpickled before its MAC checks out."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from tms_stack.commands.check import run_check
from tms_stack.repo.loader import load_file
from tms_stack.repo.parsecache import MAGIC, PACK, ParseCache, decode, encode, stamp

TMS = [sys.executable, "-c", "from tms_stack.cli import main; main()"]  # this tree's CLI, wherever it is copied


def _findings(repo: Path, pc: ParseCache | None) -> list[str]:
    result = run_check(repo, None, read=pc.read if pc else None)
    return [f"{d.location()} {d.rule} {d.message}" for d in result.all()]


def _warm(repo: Path) -> ParseCache:
    pc = ParseCache()
    _findings(repo, pc)
    assert pc.save()
    return pc


def test_a_second_run_reads_every_file_from_the_cache(example_repo: Path, cache: Path) -> None:
    (example_repo / "leases" / "broken.yaml").write_text("kind: [\n")          # unreadable: cached too
    cold = _warm(example_repo)
    assert cold.misses > 0 and (cache / PACK).exists()
    warm = ParseCache()
    assert _findings(example_repo, warm) == _findings(example_repo, None)
    assert warm.misses == 0 and warm.hits == cold.misses
    # One file edited: only it is parsed again; its new findings are the file's, not the cache's.
    fd = example_repo / "leases" / "fraud-detector.yaml"
    fd.write_text(fd.read_text().replace("cpu: 4,", "cpu: 40,"))
    again = ParseCache()
    assert _findings(example_repo, again) == _findings(example_repo, None)
    assert again.misses == 1
    assert any("resources.cpu" in f or "cpu" in f for f in _findings(example_repo, again))


def test_a_file_moved_to_another_path_is_parsed_again(example_repo: Path, cache: Path) -> None:
    """Same bytes, another path: findings name the path, so the path is part of the key."""
    _warm(example_repo)
    lease = example_repo / "leases" / "ranker.yaml"
    (example_repo / "leases" / "ranker2.yaml").write_bytes(lease.read_bytes())
    lease.unlink()
    pc = ParseCache()
    found = _findings(example_repo, pc)
    assert found == _findings(example_repo, None)
    assert pc.misses == 1 and any("leases/ranker2.yaml" in f for f in found)


def _damaged(cache: Path, how: str) -> None:
    path = cache / PACK
    data = bytearray(path.read_bytes())
    if how == "corrupted":
        data[len(data) // 2] ^= 0xFF
    elif how == "truncated":
        del data[len(data) // 2:]
    elif how == "empty":
        data = bytearray()
    elif how == "foreign-version":
        data[len(MAGIC)] ^= 0xFF        # the stamp of other code
    elif how == "not-a-pack":
        data = bytearray(b"hello")
    elif how in ("link-to-a-device", "fifo"):
        # Neither may hang the command: a link is not followed, nothing but a plain file is read.
        path.unlink()
        if how == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to("/dev/zero")
        return
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["corrupted", "truncated", "empty", "foreign-version", "not-a-pack",
                                 "link-to-a-device", "fifo"])
def test_a_damaged_or_foreign_pack_is_ignored(example_repo: Path, cache: Path, how: str) -> None:
    _warm(example_repo)
    _damaged(cache, how)
    pc = ParseCache()
    assert pc.stored == {}
    assert _findings(example_repo, pc) == _findings(example_repo, None)
    assert pc.hits == 0


def test_a_pack_written_under_another_key_is_ignored(example_repo: Path, cache: Path) -> None:
    """A cache restored from another machine or job, or made by someone else: foreign."""
    pc = _warm(example_repo)
    (cache / PACK).write_bytes(encode(pc.used, b"k" * 32))
    assert ParseCache().stored == {}


def test_a_tampered_entry_is_never_trusted(example_repo: Path, cache: Path) -> None:
    """An entry rewritten to say a lease asks for 1 GPU where its file says 40 CPUs: the MAC fails,
    so the finding still comes from the file."""
    fd = example_repo / "leases" / "fraud-detector.yaml"
    fd.write_text(fd.read_text().replace("cpu: 4,", "cpu: 40,"))
    pc = _warm(example_repo)
    clean = ParseCache(load=load_file, use_disk=False)
    # The entry of a valid lease in place of the over-limit one, same key (blob id and path).
    victim = next(k for k in pc.used if k[1] == "leases/fraud-detector.yaml")
    donor = next(k for k in pc.used if k[1] == "leases/text-ensemble.yaml")
    forged = dict(pc.used)
    forged[victim] = pc.used[donor]
    # The writer's header and MAC kept, the payload swapped: what someone without the key can do.
    header = (cache / PACK).read_bytes()[:len(MAGIC) + 64]
    payload = encode(forged, b"k" * 32)[len(MAGIC) + 64:]
    (cache / PACK).write_bytes(header + payload)
    assert ParseCache().stored == {}
    assert _findings(example_repo, ParseCache()) == _findings(example_repo, clean)
    assert any("leases/fraud-detector.yaml" in f and "cpu" in f for f in _findings(example_repo, ParseCache()))


class _Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(os.environ["TMS_CACHE_DIR"]) / "pwned",))


def test_nothing_is_unpickled_before_the_mac_checks_out(example_repo: Path, cache: Path) -> None:
    _warm(example_repo)
    payload = pickle.dumps({"x": _Boom()})
    # The right magic and stamp, a MAC made without the key.
    (cache / PACK).write_bytes(MAGIC + stamp() + b"\0" * 32 + payload)
    assert ParseCache().stored == {}
    assert not (cache / "pwned").exists()
    # The same bytes under the right key would run: the MAC is what stands in the way.
    key = ParseCache().key
    assert key is not None
    assert decode(encode({"x": 1}, key), key) == {"x": 1}


def test_a_key_file_others_can_read_means_no_cache(example_repo: Path, cache: Path) -> None:
    _warm(example_repo)
    (cache / "key").chmod(0o644)
    pc = ParseCache()
    assert pc.key is None and pc.stored == {}
    assert not pc.save()


def test_a_file_that_changes_while_it_is_read_is_not_remembered(example_repo: Path, cache: Path) -> None:
    target = example_repo / "leases" / "ranker.yaml"

    def racing(path: Path, display: str, kinds: tuple[str, ...]):  # type: ignore[no-untyped-def]
        entry = load_file(path, display, kinds)
        if path == target:
            path.write_text(path.read_text().replace("quota: 1}", "quota: 2}"))
        return entry

    pc = ParseCache(load=racing)
    _findings(example_repo, pc)
    assert not any(k[1] == "leases/ranker.yaml" for k in pc.used)


def test_the_cli_keeps_the_cache_outside_the_repository(example_repo: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMS_CACHE")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    subprocess.run(["git", "init", "-q"], cwd=example_repo, check=True)
    before = sorted(p.relative_to(example_repo) for p in example_repo.rglob("*") if ".git" not in p.parts)
    out = subprocess.run([*TMS, "check", "--now", "2026-11-22T00:00:00Z"], cwd=example_repo, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "xdg" / "tms-stack" / "parse-cache" / PACK).exists()
    after = sorted(p.relative_to(example_repo) for p in example_repo.rglob("*") if ".git" not in p.parts)
    assert after == before
    # Turned off: nothing read or written.
    (tmp_path / "xdg" / "tms-stack" / "parse-cache" / PACK).unlink()
    for args, extra in ((["--no-cache"], {}), ([], {"TMS_CACHE": "off"})):
        out = subprocess.run([*TMS, "check", *args, "--now", "2026-11-22T00:00:00Z"], cwd=example_repo,
                             env={**env, **extra}, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert not (tmp_path / "xdg" / "tms-stack" / "parse-cache" / PACK).exists()



def test_memory_mode_shares_answers_in_one_command_and_never_touches_disk(
        example_repo: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TMS_CACHE=memory (deploy.yml): a pack already on disk is not read, none is written, and the
    two trees of one command still share the answers for identical files."""
    from tms_stack.repo.parsecache import reader

    _warm(example_repo)                          # a pack a deploy must not read
    packed = (cache / PACK).read_bytes()
    monkeypatch.setenv("TMS_CACHE", "memory")
    pc = reader()
    assert pc is not None and pc.key is None and pc.stored == {}
    assert _findings(example_repo, pc) == _findings(example_repo, None)
    first = pc.misses
    assert first > 0 and pc.hits == 0, "read from the pack on disk"
    _findings(example_repo, pc)                  # the second tree of the same command
    assert pc.misses == first and pc.hits == first
    assert not pc.save() and (cache / PACK).read_bytes() == packed
    monkeypatch.setenv("TMS_CACHE", "off")
    assert reader() is None
