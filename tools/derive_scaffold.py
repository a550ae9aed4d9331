"""Regenerate tms_stack/commands/scaffold/derived/ from this repository's workflows and
.gitattributes (what `tms init` writes into a new fleet; its CODEOWNERS is generated from its own
policies instead). tests/cli/test_init.py fails when they drift: run `python tools/derive_scaffold.py` after editing those files."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tms_stack.commands.scaffold import derive_all  # noqa: E402


def main() -> None:
    out = ROOT / "tms_stack" / "commands" / "scaffold" / "derived"
    for rel, text in derive_all(ROOT).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
