#!/usr/bin/env bash
# Creates .venv and installs tms-stack with its dev extras. Idempotent: a second run
# only reinstalls when pyproject.toml changed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/.venv"
stamp="$venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv" >&2
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ]; then
  echo "==> installing tms-stack and its dev dependencies (first run takes a few minutes)" >&2
  "$venv/bin/python" -m pip install --progress-bar on -q --upgrade pip >&2
  "$venv/bin/python" -m pip install --progress-bar on -e ".[dev]" >&2
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
