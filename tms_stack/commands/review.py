"""The trusted review's runs: `python -I -m tms_stack.commands.review <base-dir> <pr-dir> <out-dir>`.

Judges a pull request's DATA with the code that is running this module, which the caller has made
the base's: scripts/trusted-review.sh runs it from the base checkout's tms_stack/ (the tool
repository), and a fleet made by `tms init` from the tms-stack its base pins in requirements.txt
(installed into a fresh environment; the derived review.yml). Nothing of <pr-dir> is imported or
executed and no git command runs in it; its leases/, pools/, policies/ and Pulumi.*.yaml are read
as data. Check is judged against <base-dir> (`tms check --base-dir`: the placement lock must be the
one derived from the base's, budget findings name what changed, compiled files and environments
among the changed paths are refused). Writes into <out-dir>:

  plan.md           the plan comment (markdown, at most 65,536 characters)
  check.txt         `tms check` as text; check.json: as JSON (docs/check-json.md)
  check-github.txt  as GitHub annotations (::error file=...,line=...::)
  exit-code         check's exit code

and exits with check's exit code: 0 clean, 1 violations, 2 unreadable input (docs/cli.md); 64 for
a wrong command line; anything else means the review itself failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tms_stack.rules.context import BASE_REF

USAGE = "usage: python -I -m tms_stack.commands.review <base-dir> <pr-dir> <out-dir>"

# Each run is a fresh `python -I` that imports tms_stack from the same folder as this module, so a
# review run from a base checkout never picks up an installed (or the PR's) tms_stack.
LAUNCHER = ("import sys\n"
            "sys.path.insert(0, sys.argv.pop(1))\n"
            "sys.argv[0] = 'tms'\n"
            "from tms_stack.cli import main\n"
            "main()\n")


def _label(base: Path) -> str:
    """The base's commit for the plan's heading; the base is trusted, so git may run in it."""
    if (base / ".git").exists():
        out = subprocess.run(["git", "-C", str(base), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return "the base checkout"


def review(base: Path, pr: Path, out: Path) -> int:
    """Run check (three formats from one run) and plan in parallel, write the results into `out`,
    return check's exit code."""
    out.mkdir(parents=True, exist_ok=True)
    label = _label(base)
    code_dir = str(Path(__file__).resolve().parents[2])
    print(f"==> trusted-review: tms check and tms plan of {pr} with the code of {label}", file=sys.stderr)
    # check judges against the base: the lock must be the one derived from the base's, budget
    # findings name what changed, compiled files and environments are refused.
    against = ["--base-dir", str(base), *(["--base", label] if BASE_REF.fullmatch(label) else [])]
    # One check writes all three formats (it used to run three times, one per format).
    reports = ["--report", f"json:{out / 'check.json'}", "--report", f"github:{out / 'check-github.txt'}"]
    runs = {
        "check": (["check", str(pr), "--format", "text", *against, *reports], out / "check.txt"),
        "plan": (["plan", "--root", str(pr), "--base-dir", str(base), "--base", label], out / "plan.md"),
    }
    with tempfile.TemporaryDirectory(prefix="tms-review.") as scratch:
        procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for name, (args, target) in runs.items():
            stderr = Path(scratch) / f"{name}.stderr"
            with target.open("wb") as stdout, stderr.open("wb") as err:
                # cwd is an empty scratch folder, never <pr-dir>.
                # -B: no __pycache__ written into the base checkout (it would show as a changed path).
                procs[name] = (subprocess.Popen([sys.executable, "-I", "-B", "-c", LAUNCHER, code_dir, *args],
                                                cwd=scratch, stdout=stdout, stderr=err), stderr)
        codes = {name: proc.wait() for name, (proc, _) in procs.items()}
        for name in ("check", "plan"):
            sys.stderr.write(procs[name][1].read_text(errors="replace"))
    rc, prc = codes["check"], codes["plan"]
    # A check that stopped before its findings (a usage error, exit 2) wrote no reports: say so in
    # the shapes their readers expect (docs/cli.md: a JSON error document; no annotations).
    if not (out / "check.json").exists():
        (out / "check.json").write_text(json.dumps(
            {"error": f"tms check stopped before its findings (exit {rc}): see check.txt", "exit_code": rc}) + "\n")
    if not (out / "check-github.txt").exists():
        (out / "check-github.txt").write_text("")
    plan = out / "plan.md"
    if prc != 0 or plan.stat().st_size == 0:
        # The comment must still say something true: no plan, and why to look at the job log.
        plan.write_text("<!-- tms-stack-plan -->\n## tms-stack plan\n\n"
                        f":x: The plan could not be computed (`tms plan` exit {prc}; `tms check` exit {rc}). "
                        "See the review job's log.\n")
    (out / "exit-code").write_text(f"{rc}\n")
    print(f"==> trusted-review: check exit {rc}, plan exit {prc}; results in {out}", file=sys.stderr)
    return rc


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print(USAGE, file=sys.stderr)
        return 64
    base, pr, out = (Path(a) for a in args)
    for folder in (base, pr):
        if not folder.is_dir():
            print(f"trusted-review: {folder}: no such folder", file=sys.stderr)
            return 64
    return review(base.resolve(), pr.resolve(), out.resolve())


if __name__ == "__main__":
    sys.exit(main())
