#!/usr/bin/env bash
# usage: scripts/trusted-review.sh <base-dir> <pr-dir> <out-dir>
#
# The trusted checker (docs/security.md, "Review workflows"): judges a pull request's DATA with the
# BASE revision's code. <base-dir> is a checkout of the PR's base (trusted: its tms_stack/ is what
# runs), <pr-dir> a checkout of the PR (untrusted: only its leases/, pools/, policies/ and
# Pulumi.*.yaml are read, as data; nothing in it is imported or executed, no git command runs in
# it). Writes into <out-dir>:
#   plan.md       the plan comment (markdown, ≤ 65,536 characters), from `tms plan` of the base's code
#   check.txt     `tms check` as text;  check.json: the same as JSON (docs/check-json.md)
#   check-github.txt  the same as GitHub annotations (::error file=…,line=…::)
#   exit-code     check's exit code
# Exits with check's exit code: 0 clean, 1 violations, 2 unreadable input (docs/cli.md); any other
# code (with a message on stderr) means this script itself failed. The runs themselves are the
# base's tms_stack/commands/review.py, which a fleet made by `tms init` (no scripts/, no tool code) runs from
# the tms-stack its base pins (the derived review.yml).
#
# The base's runtime dependencies live in a virtual environment cached under the user cache dir,
# keyed by the base's pyproject.toml (and lock files, if any) and the Python version; the base's
# tms_stack/ itself is run from <base-dir> (python -I: no current directory, no PYTHONPATH, no user
# site on sys.path), so a cached environment never holds another revision's code.
set -euo pipefail

if [ "$#" -ne 3 ]; then
  sed -n 2p "$0" | sed 's/^# //' >&2
  exit 64
fi
for d in "$1" "$2"; do
  [ -d "$d" ] || { echo "trusted-review: $d: no such folder" >&2; exit 64; }
done
base="$(cd "$1" && pwd -P)"
pr="$(cd "$2" && pwd -P)"
mkdir -p "$3"
out="$(cd "$3" && pwd -P)"
[ -f "$base/pyproject.toml" ] || { echo "trusted-review: $base has no pyproject.toml: not a tms-stack checkout" >&2; exit 64; }
[ -d "$base/tms_stack" ] || { echo "trusted-review: $base has no tms_stack/: not a tms-stack checkout" >&2; exit 64; }

python="${TMS_REVIEW_PYTHON:-python3}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tms-stack/review"
mkdir -p "$cache"
key="$( { "$python" -c 'import sys; print(sys.version)'
          cat "$base/pyproject.toml"
          for f in "$base"/requirements*.lock "$base"/requirements*.txt "$base"/*.lock; do
            [ -f "$f" ] && { echo "== ${f##*/}"; cat "$f"; }
          done; true; } | sha256sum | cut -c1-16)"
venv="$cache/venv-$key"

if [ -f "$venv/.ready" ] && ! "$venv/bin/python" -I -c '' 2>/dev/null; then
  # A venv's bin/python links to the interpreter that made it, and a runner's tool cache can
  # remove that one (setup-python upgrading, a self-hosted runner's clean-up): install it again
  # rather than fail every review with "No such file or directory".
  echo "==> trusted-review: the cached $venv no longer runs; installing it again" >&2
  rm -f "$venv/.ready"
fi
if [ ! -f "$venv/.ready" ]; then
  # One installer per key; a second review waits instead of racing into the same folder.
  exec 9>"$cache/venv-$key.lock"
  flock 9
  if [ ! -f "$venv/.ready" ]; then
    echo "==> trusted-review: installing the base's dependencies into $venv (first run takes a few minutes)" >&2
    rm -rf "$venv.tmp"
    "$python" -m venv "$venv.tmp"
    # Only the dependency list is taken from pyproject.toml: nothing of the base is built or run here.
    "$venv.tmp/bin/python" -I -c '
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))' "$base/pyproject.toml" > "$venv.tmp/requirements.txt"
    "$venv.tmp/bin/python" -m pip install -q --upgrade pip >&2
    "$venv.tmp/bin/python" -m pip install -q -r "$venv.tmp/requirements.txt" >&2
    touch "$venv.tmp/.ready"
    # python -m venv writes absolute paths into bin/ scripts; we only ever call bin/python, which
    # resolves its prefix from pyvenv.cfg next to it, so the rename is safe.
    rm -rf "$venv"    # a broken one (above); mv would otherwise move the new venv inside it
    mv "$venv.tmp" "$venv"
  fi
  exec 9>&-
fi

scratch="$(mktemp -d "${TMPDIR:-/tmp}/tms-review.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
# The launcher puts the base's checkout first on sys.path and refuses to run if tms_stack came
# from anywhere else; tms_stack/commands/review.py (the base's) then runs check and plan, each in a fresh
# `python -I` importing from the same folder. cwd is an empty scratch folder, never <pr-dir>.
launcher='import sys
base = sys.argv.pop(1)
sys.path.insert(0, base)
import tms_stack
if not tms_stack.__file__.startswith(base + "/"):
    sys.exit("trusted-review: tms_stack was imported from %s, not from the base %s" % (tms_stack.__file__, base))
from tms_stack.commands.review import main
sys.exit(main(sys.argv[1:]))'
set +e
(cd "$scratch" && "$venv/bin/python" -I -B -c "$launcher" "$base" "$base" "$pr" "$out")
rc=$?
set -e
exit "$rc"
