"""Compiled files and environments a pull request adds or changes (rule `files.generated`).

Python imports an extension module (`x.cpython-311-x86_64-linux-gnu.so`) before `x.py`, a stray
`x.pyc` where no `x.py` is, and an unchecked `__pycache__/x.*.pyc` instead of the source it claims
to match: a reviewer reading the `.py` never sees what runs. A virtual environment or
`node_modules/` is code nobody reviews. None of them belongs in a pull request. Only paths the pull
request adds or changes are judged (with a base: `tms check --base-dir`, `tms plan`, the trusted
review): a local checkout's own `.venv/` is not a finding of plain `tms check`."""

from __future__ import annotations

from tms_stack.models.diagnostics import Diagnostic
from tms_stack.rules.context import Base

CACHE_DIRS = {"__pycache__"}
ENV_DIRS = {".venv", "venv", "site-packages", "node_modules"}
COMPILED = (".pyc", ".pyo", ".so", ".pyd")
ENV_MARKER = "pyvenv.cfg"  # every virtual environment has one at its top


def generated_paths(paths: list[str]) -> dict[str, tuple[str, int]]:
    """Offending folder (`x/`) or file -> (what it is, how many changed files it holds)."""
    envs = {p[: -len(ENV_MARKER)] for p in paths if p == ENV_MARKER or p.endswith("/" + ENV_MARKER)}
    out: dict[str, tuple[str, int]] = {}

    def add(key: str, what: str) -> None:
        _, count = out.get(key, (what, 0))
        out[key] = (what, count + 1)

    for path in sorted(paths):
        env = next((e for e in envs if path.startswith(e)), None)
        if env is not None:
            add(env or "./", "a virtual environment")
            continue
        parts = path.split("/")
        # The last part too: a link named `__pycache__` (to a folder outside the tree) is one.
        for i, part in enumerate(parts):
            if part in ENV_DIRS or part in CACHE_DIRS:
                what = "compiled Python" if part in CACHE_DIRS else (
                    "a package folder (node_modules)" if part == "node_modules" else "a virtual environment")
                add("/".join(parts[: i + 1]) + "/", what)
                break
        else:
            if path.lower().endswith(COMPILED):
                add(path, "compiled code")
    return out


def generated_rules(base: Base | None) -> list[Diagnostic]:
    if base is None:
        return []
    found = generated_paths([p for p, kind in base.changed if kind != "removed"])
    diags = []
    for key, (what, count) in sorted(found.items()):
        files = f" ({count} files)" if count > 1 else ""
        why = ("Python would run it instead of the reviewed source" if what.startswith("compiled")
               else "nobody reviews its code")
        diags.append(Diagnostic(key.rstrip("/") or ".", 0, 0, "files.generated",
                                f"{key}{files} is {what}, which a pull request may not add or change: {why}; "
                                f"remove it (`git rm -r --cached {key.rstrip('/') or '.'}`) and list it in "
                                ".gitignore"))
    return diags
