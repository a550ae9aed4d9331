"""Soak: randomized concurrent edits and git merges on one checkout; nothing reported done is lost.

Several worker processes run random `tms` edits (pooled `lease create`, `renew --force`, `release`,
`lease name create`/`move`, `pool lock`) with `--wait`, each on its own leases, so each worker's
record of what was reported done is the truth for its leases. Meanwhile a merger commits the
checkout and merges side branches (a new pooled lease, sometimes a `pool rebalance --write`) with
the lock merge driver, holding the same repository lock with flock(1) as docs/cli.md shows.

At the end every change reported as done must be in the files (each live lease with the expiry and
names its last successful edit reported; each released lease gone; each merged side lease
present), `tms check` must pass, and no temporary file may be left.

    python bench/soak.py --ops 1000 --workers 4     # the issue's 1,000 (bench/RESULTS.md)

tests/lifecycle/test_soak.py runs the same code with a smaller count."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOW = "2026-11-22T00:00:00Z"
POOL = "shared-t4-pool"
TMS = [sys.executable, "-c", "from tms_stack.cli import main; main()"]
GIT_ENV = {"GIT_AUTHOR_NAME": "soak", "GIT_AUTHOR_EMAIL": "soak@example.com", "GIT_COMMITTER_NAME": "soak",
           "GIT_COMMITTER_EMAIL": "soak@example.com"}


def env() -> dict[str, str]:
    return {**os.environ, **GIT_ENV, "PYTHONPATH": str(ROOT), "TMS_OWNER": "team-assist"}


def tms(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TMS, *args], cwd=root, env=env(), capture_output=True, text=True, timeout=900)


def git(root: Path, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(["bash", "-c", command], cwd=root, env=env(), capture_output=True, text=True, timeout=900)
    if check and out.returncode != 0:
        raise RuntimeError(f"{command}: {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


@dataclass
class Lease:
    expires: str | None = None
    names: list[str] = field(default_factory=list)


@dataclass
class Tally:
    ops: int = 0
    done: int = 0
    refused: int = 0
    busy: int = 0
    failed: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def worker(root: Path, index: int, count: int, seed: int, queue: Any) -> None:
    rng = random.Random(seed)
    live: dict[str, Lease] = {}
    gone: set[str] = set()
    tally = Tally()
    serial = 0
    for _ in range(count):
        serial += 1
        ops = ["create"] * (3 if len(live) < 3 else 0) + ["renew"] * 3 * bool(live) + ["release"] * bool(live)
        ops += ["name"] * 2 * bool(live) + ["move"] * 2 * (len(live) > 1 and any(l.names for l in live.values()))
        ops += ["lock"]
        op = rng.choice(ops)
        wait = ["--wait", "600", "-o", "json"]
        if op == "create":
            name = f"w{index}-l{serial}"
            out = tms(root, "lease", "create", name, "-m", f"name={name}_m,uri=model://s3-models/soak/{name},backend=python",
                      "-p", POOL, "--quota", "1", "--now", NOW, *wait)
            if out.returncode == 0:
                live[name] = Lease(json.loads(out.stdout)["expires"])
        elif op == "renew":
            name = rng.choice(sorted(live))
            out = tms(root, "lease", "renew", name, "--duration", f"{rng.randint(30, 300)}d", "--force",
                      "--now", NOW, *wait)
            if out.returncode == 0:
                live[name].expires = json.loads(out.stdout)["expires"]
        elif op == "release":
            name = rng.choice(sorted(live))
            out = tms(root, "lease", "release", name, *wait)
            if out.returncode == 0:
                del live[name]
                gone.add(name)
        elif op == "name":
            name = rng.choice(sorted(live))
            alias = f"w{index}-n{serial}"
            out = tms(root, "lease", "name", "create", alias, name, *wait)
            if out.returncode == 0:
                live[name].names.append(alias)
        elif op == "move":
            source = rng.choice(sorted(n for n, l in live.items() if l.names))
            alias = rng.choice(live[source].names)
            target = rng.choice(sorted(set(live) - {source}))
            out = tms(root, "lease", "name", "move", alias, source, target, *wait)
            if out.returncode == 0:
                live[source].names.remove(alias)
                live[target].names.append(alias)
        else:
            out = tms(root, "pool", "lock", "--no-learn", *wait)
        tally.ops += 1
        if tally.ops % 50 == 0:  # long work shows progress
            print(f"soak: worker {index}: {tally.ops}/{count} edits", file=sys.stderr, flush=True)
        if out.returncode == 0:
            tally.done += 1
        elif out.returncode == 1:
            tally.refused += 1  # check refused it (e.g. the pool is full): reported as not done
            tally.reasons.append(f"{op}: {out.stdout.strip()[-200:]}")
        elif out.returncode == 3:
            tally.busy += 1
        else:
            tally.failed.append(f"{op}: exit {out.returncode}: {out.stderr.strip()[-300:]}")
    queue.put(("worker", index, {n: (l.expires, l.names) for n, l in live.items()}, sorted(gone), tally.__dict__))


def merger(root: Path, rounds: int, seed: int, queue: Any, stop: Any) -> None:
    """Commit the checkout and merge a side branch, `rounds` times, under the repository lock."""
    rng = random.Random(seed)
    side = root.parent / "side"
    merged: list[str] = []
    conflicts = merges = 0
    locked = f"flock {shlex.quote(str(root / '.git' / 'tms-edit.lock'))}"
    for j in range(rounds):
        if stop.is_set():
            break
        # A side branch from the last commit: one new pooled lease, sometimes a rebalance.
        git(root, f"{locked} git add -A && {locked} git commit -qm 'soak snapshot {j}' --allow-empty")
        shutil.rmtree(side, ignore_errors=True)
        git(root, f"git worktree prune && git worktree add -q -B side {shlex.quote(str(side))} HEAD")
        name = f"side-{j}"
        for old in sorted((side / "leases").glob("side-*.yaml")):  # one side lease at a time: the pool stays open
            tms(side, "lease", "release", old.stem)
        out = tms(side, "lease", "create", name, "-m", f"name={name}_m,uri=model://s3-models/soak/{name},backend=python",
                  "-p", POOL, "--quota", "1", "--now", NOW)
        if out.returncode != 0:
            continue  # the pool is full on the side branch: nothing to merge this round
        if rng.random() < 0.3:
            tms(side, "pool", "rebalance", "--write")
        git(side, f"git add -A && git commit -qm 'side {name}'")
        # Merge it into the busy checkout, holding the lock the edits hold.
        done = git(root, f"{locked} bash -c 'git add -A && git commit -qm \"soak before merge {j}\" --allow-empty "
                         f"&& git merge --no-edit side'", check=False)
        if done.returncode == 0:
            merges += 1
            merged = [n for n in merged if (root / "leases" / f"{n}.yaml").exists()] + [name]
        else:
            conflicts += 1
            git(root, f"{locked} git merge --abort", check=False)
        time.sleep(rng.random())
    queue.put(("merger", 0, merged, conflicts, {"merges": merges}))


def run(ops: int, workers: int, merges: int, seed: int = 22, base: Path | None = None) -> dict[str, Any]:
    from tests.conftest import copy_example

    tmp = Path(tempfile.mkdtemp(prefix="tms-soak-", dir=base))
    root = copy_example(tmp / "fleet")
    shutil.copy(ROOT / ".gitattributes", root / ".gitattributes")
    git(root, "git init -q -b main . && git add -A && git commit -qm start")
    driver = " ".join(shlex.quote(w) for w in TMS) + " pool merge-driver %O %A %B %P"
    git(root, f"git config merge.tms-lock.driver {shlex.quote(driver)}")
    started = time.monotonic()
    mp = multiprocessing.get_context("fork")  # the workers inherit this module as it is
    queue: Any = mp.Queue()
    stop = mp.Event()
    per = [ops // workers + (1 if i < ops % workers else 0) for i in range(workers)]
    procs = [mp.Process(target=worker, args=(root, i, n, seed + i, queue)) for i, n in enumerate(per)]
    procs.append(mp.Process(target=merger, args=(root, merges, seed, queue, stop)))
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=36000) for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.monotonic() - started
    return verify(root, results, elapsed) | {"dir": str(tmp)}


def verify(root: Path, results: list[Any], elapsed: float) -> dict[str, Any]:
    import yaml

    lost: list[str] = []
    totals = Tally()
    merged: list[str] = []
    conflicts = merges = 0
    files = {p.stem: yaml.safe_load(p.read_text()) for p in (root / "leases").glob("*.yaml")}
    for kind, _index, first, second, tally in results:
        if kind == "merger":
            merged, conflicts, merges = first, second, tally["merges"]
            continue
        for key in ("ops", "done", "refused", "busy"):
            setattr(totals, key, getattr(totals, key) + tally[key])
        totals.failed += tally["failed"]
        totals.reasons += tally["reasons"]
        for name, (expires, names) in first.items():
            spec = files.get(name, {}).get("spec") if name in files else None
            if spec is None:
                lost.append(f"{name}: reported created, file missing")
                continue
            have = spec["expires"]
            have = have.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(have, "strftime") else str(have)
            if have != expires:
                lost.append(f"{name}: expires {have}, last reported {expires}")
            if sorted(spec.get("names") or []) != sorted(names):
                lost.append(f"{name}: names {spec.get('names')}, reported {names}")
        lost += [f"{name}: reported released, file present" for name in second if name in files]
    lock = yaml.safe_load((root / "pools" / "placement.lock.yaml").read_text())
    placed = {n for p in lock["pools"].values() for i in p["instances"] for n in i["leases"]}
    if merged:  # each merge released the side leases before it: the last one merged is there
        last = merged[-1]
        if last not in files or last not in placed:
            lost.append(f"{last}: merged, but not in the files or the lock")
    lost += [f"{name}: released by a merge, but present" for name in files
             if name.startswith("side-") and name not in merged[-1:]]
    check = tms(root, "check", str(root), "--now", NOW)
    leftovers = sorted(p.name for folder in ("leases", "pools", "policies") for p in (root / folder).iterdir()
                       if p.name.startswith("."))
    return {"ops": totals.ops, "done": totals.done, "refused": totals.refused, "refusals": totals.reasons[:20], "busy": totals.busy,
            "failed": totals.failed, "merges": merges, "merge_conflicts": conflicts, "lost": lost,
            "check": check.returncode, "check_output": check.stdout[-1500:], "leftover_temp_files": leftovers,
            "seconds": round(elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--merges", type=int, default=None, help="default: ops / 20")
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args()
    report = run(args.ops, args.workers, args.merges if args.merges is not None else max(1, args.ops // 20), args.seed)
    print(json.dumps(report, indent=2))
    ok = not report["lost"] and not report["failed"] and report["check"] == 0 and not report["leftover_temp_files"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
