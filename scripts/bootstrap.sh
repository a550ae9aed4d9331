#!/usr/bin/env bash
# Creates .venv and installs tms-stack into it. Idempotent: a second run only reinstalls when
# pyproject.toml changed.
#   ./scripts/bootstrap.sh           runtime + dev extras (tests, linters): what `make test` needs
#   ./scripts/bootstrap.sh runtime   runtime dependencies only: what `make example` needs
set -euo pipefail
mode="${1:-dev}"
case "$mode" in
  dev) spec=".[dev]"; what="tms-stack and its dev dependencies" ;;
  runtime) spec="."; what="tms-stack (runtime dependencies only)" ;;
  *) echo "usage: $0 [dev|runtime]" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/.venv"
sum="$(sha1sum pyproject.toml | cut -c1-12)"
stamp="$venv/.installed-$mode-$sum"
# A dev install includes the runtime one.
if [ "$mode" = runtime ] && [ -f "$venv/.installed-dev-$sum" ]; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv" >&2
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ]; then
  echo "==> installing $what (first run takes a few minutes)" >&2
  "$venv/bin/python" -m pip install --progress-bar on -q --upgrade pip >&2
  "$venv/bin/python" -m pip install --progress-bar on -e "$spec" >&2
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
