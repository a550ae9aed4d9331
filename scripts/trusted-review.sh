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
# code (with a message on stderr) means this script itself failed.
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
    mv "$venv.tmp" "$venv"
  fi
  exec 9>&-
fi

scratch="$(mktemp -d "${TMPDIR:-/tmp}/tms-review.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
# The launcher puts the base's checkout first on sys.path and refuses to run if tms_stack came
# from anywhere else. cwd is an empty scratch folder, never <pr-dir>.
launcher='import sys
base = sys.argv.pop(1)
sys.path.insert(0, base)
sys.argv[0] = "tms"
import tms_stack
if not tms_stack.__file__.startswith(base + "/"):
    sys.exit("trusted-review: tms_stack was imported from %s, not from the base %s" % (tms_stack.__file__, base))
from tms_stack.cli import main
main()'
tms() {
  (cd "$scratch" && "$venv/bin/python" -I -c "$launcher" "$base" "$@")
}

label="the base checkout"
if [ -d "$base/.git" ] || [ -f "$base/.git" ]; then
  label="$(git -C "$base" rev-parse --short=12 HEAD 2>/dev/null || echo "the base checkout")"
fi

echo "==> trusted-review: tms check and tms plan of $pr with the code of $label" >&2
# The four runs are independent: in parallel they take the time of the plan on a CI runner's cores.
set +e
tms check "$pr" --format text > "$out/check.txt" 2> "$scratch/check.stderr" &
check_pid=$!
tms check "$pr" --format json > "$out/check.json" 2> "$scratch/check-json.stderr" &
json_pid=$!
tms check "$pr" --format github > "$out/check-github.txt" 2> "$scratch/check-github.stderr" &
github_pid=$!
tms plan --root "$pr" --base-dir "$base" --base "$label" > "$out/plan.md" 2> "$scratch/plan.stderr" &
plan_pid=$!
wait "$check_pid"; rc=$?
wait "$json_pid"
wait "$github_pid"
wait "$plan_pid"; prc=$?
set -e
cat "$scratch/check.stderr" "$scratch/plan.stderr" >&2
if [ "$prc" -ne 0 ] || [ ! -s "$out/plan.md" ]; then
  # The comment must still say something true: no plan, and why to look at the job log.
  {
    echo "<!-- tms-stack-plan -->"
    echo "## tms-stack plan"
    echo
    echo ":x: The plan could not be computed (\`tms plan\` exit $prc; \`tms check\` exit $rc). See the review job's log."
  } > "$out/plan.md"
fi
echo "$rc" > "$out/exit-code"
echo "==> trusted-review: check exit $rc, plan exit $prc; results in $out" >&2
exit "$rc"
