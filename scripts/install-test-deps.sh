#!/usr/bin/env bash
# Installs what the test suite's real servers need (Debian packages, Go-built binaries).
# Each piece lives in scripts/deps.d/NN-name.sh; every step is idempotent and prints progress.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
for step in "$root"/scripts/deps.d/*.sh; do
  [ -e "$step" ] || continue
  echo "==> $(basename "$step")" >&2
  bash "$step"
done
