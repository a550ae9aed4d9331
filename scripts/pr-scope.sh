#!/usr/bin/env bash
# Does a pull request touch the tool, or only user data? Prints `tool=true` or `tool=false` (for
# $GITHUB_OUTPUT). The tool's test suite reads its own fixture (tests/fixtures/example), never the
# root's leases/ or pools/, so a PR that changes only those cannot change the suite's result and
# need not wait for it (issue 14: every lease PR waited 13 minutes). Anything else, an empty diff or
# a diff git cannot compute runs the suite.
#   usage: scripts/pr-scope.sh BASE_REF   (e.g. origin/main)
set -uo pipefail
base="${1:?usage: $0 BASE_REF}"
if ! files="$(git diff --name-only "$base"...HEAD 2>/dev/null)" || [ -z "$files" ]; then
  echo "tool=true"
  exit 0
fi
while IFS= read -r f; do
  case "$f" in
    leases/*|pools/*) ;;
    *) echo "tool=true"; exit 0 ;;
  esac
done <<< "$files"
echo "tool=false"
