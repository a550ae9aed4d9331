"""The CLI is a package with explicit registration, and the core is free of CLI code (issue 14:
`tms_stack/cli.py` registered command modules by importing them and ignoring
`ModuleNotFoundError`, and the `cli_*.py` files sat among the core modules).

Also: the exit codes in code are the one table of docs/cli.md."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import typer

from tms_stack.cli import app, common
from tms_stack.models.diagnostics import Conflict, ExitCode, PolicyFindings, Refused, UnreadableInput

PACKAGE = Path(__file__).resolve().parents[2] / "tms_stack"
DOCS = PACKAGE.parent / "docs" / "cli.md"
CLI_LIBRARIES = {"typer", "click", "rich"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
            if node.module.startswith("tms_stack.cli"):
                found.add("tms_stack.cli")
    return found


def test_no_cli_modules_among_the_core() -> None:
    assert not (PACKAGE / "cli.py").exists()
    assert not list(PACKAGE.glob("cli_*.py"))
    assert (PACKAGE / "cli" / "__init__.py").is_file()


def test_the_core_imports_no_cli_code() -> None:
    """Outside tms_stack/cli/, nothing imports typer/click/rich or the CLI package: the CLI is an edge."""
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts[:1]:
            continue
        bad = _imports(path) & (CLI_LIBRARIES | {"tms_stack.cli"})
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert not offenders, offenders


def test_registration_is_explicit() -> None:
    """No import of the project's modules guarded by `except ImportError/ModuleNotFoundError` in the
    CLI: a missing module is a crash at import, not a command that silently disappears."""
    for path in (PACKAGE / "cli").glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Try):
                # Only the project's own modules: a third-party import may be optional.
                guarded = any(isinstance(n, ast.ImportFrom) and (n.module or "").startswith("tms_stack")
                              or isinstance(n, ast.Import) and any(a.name.startswith("tms_stack") for a in n.names)
                              for stmt in node.body for n in ast.walk(stmt))
                caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
                assert not (guarded and caught & {"ImportError", "ModuleNotFoundError"}), (path.name, caught)
    # Every command module under tms_stack/cli/ with a register() contributes a command to the tree.
    registered = {c.callback.__module__ for c in _commands(typer.main.get_command(app))}
    modules = {f"tms_stack.cli.{p.stem}" for p in (PACKAGE / "cli").glob("*.py")
               if re.search(r"^def register\(", p.read_text(), re.M)}
    assert modules and modules <= registered, sorted(modules - registered)


def _commands(cmd: object) -> list:  # type: ignore[type-arg]
    subs = getattr(cmd, "commands", None)
    return [cmd] if subs is None else [c for sub in subs.values() for c in _commands(sub)]


def test_exit_codes_are_the_documented_table() -> None:
    section = DOCS.read_text().split("## Exit codes", 1)[1]
    rows = dict(re.findall(r"^\| *(\d) *\| *([^|]+?) *\|$", section, re.M))
    assert set(rows) == {"0", "1", "2", "3"}, rows
    assert (common.EXIT_OK, common.EXIT_FINDINGS, common.EXIT_USAGE, common.EXIT_CONFLICT) == (0, 1, 2, 3)
    assert "findings" in rows["1"] and "usage" in rows["2"] and "exists" in rows["3"], rows


# --- the layers (issue 20): docs/internals.md "Layers" is the prose of this table -----------------
# A package may import its own modules and any package of a lower rank. `outside` sits beside
# `repo` (neither imports the other); the agent (the pod's loop) sees only models and outside;
# the root package (`tms_stack/__init__.py`: the version and API_VERSION) imports nothing and
# anyone may import it.
RANKS = {"models": 0, "repo": 1, "outside": 1, "logic": 2, "render": 3, "rules": 4, "commands": 5,
         "cli": 6, "deploy": 6, "__main__": 7}
AGENT_MAY_IMPORT = {"models", "outside"}
SIDE_BY_SIDE = {frozenset({"repo", "outside"}), frozenset({"cli", "deploy"})}


@dataclass(frozen=True)
class Edge:
    src: str      # importing module, dotted
    dst: str      # imported module, dotted
    line: int
    in_function: bool
    reason: str   # the comment on the import's line or the line above ("" when none)


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_edges(package: Path = PACKAGE) -> list[Edge]:
    modules = {_module_name(p, package) for p in package.rglob("*.py")}
    edges: list[Edge] = []
    for path in sorted(package.rglob("*.py")):
        src = _module_name(path, package)
        text = path.read_text()
        lines = text.splitlines()

        def visit(node: ast.AST, in_function: bool, src: str = src, lines: list[str] = lines) -> None:
            for child in ast.iter_child_nodes(node):
                inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                targets: list[str] = []
                if isinstance(child, ast.ImportFrom) and child.level == 0 and (child.module or "").startswith("tms_stack"):
                    module = child.module or ""
                    targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in child.names]
                elif isinstance(child, ast.Import):
                    targets = [a.name for a in child.names if a.name.startswith("tms_stack")]
                if targets:
                    here = lines[child.lineno - 1]
                    # a comment above a block of imports explains each of them
                    first = child.lineno - 1
                    while first > 0 and lines[first - 1].strip().startswith(("from ", "import ")):
                        first -= 1
                    above = lines[first - 1].strip() if first >= 1 else ""
                    reason = here.split("#", 1)[1].strip() if "#" in here else (
                        above[1:].strip() if above.startswith("#") else "")
                    edges.extend(Edge(src, t, child.lineno, in_function, reason) for t in dict.fromkeys(targets))
                visit(child, inner)

        visit(ast.parse(text, str(path)), False)
    return edges


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward(edges: list[Edge]) -> list[str]:
    """Every import that points up or sideways across layers, as `src:line -> dst (why)`."""
    bad = []
    for e in edges:
        a, b = _layer(e.src), _layer(e.dst)
        if a == b or b == "":
            continue
        if a == "agent":
            ok = b in AGENT_MAY_IMPORT
        elif b == "agent":
            ok = a == "cli"     # `tms agent` starts it
        elif a not in RANKS or b not in RANKS:
            ok = False          # a new top-level package must be given a rank here first
        else:
            ok = RANKS[b] < RANKS[a] and frozenset({a, b}) not in SIDE_BY_SIDE
        if not ok:
            bad.append(f"{e.src}:{e.line} -> {e.dst} ({a} may not import {b})")
    return bad


def circles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected groups of modules (function-level imports count: they hide loops)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.src != e.dst:
            graph.setdefault(e.src, set()).add(e.dst)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_every_import_points_down() -> None:
    assert upward(import_edges()) == []


def test_no_import_circles() -> None:
    assert circles(import_edges()) == []


def test_function_level_imports_say_why() -> None:
    """An import inside a function hides a dependency (and once hid a loop): each one left has a
    one-line reason on its line or the line above."""
    unexplained = [f"{e.src}:{e.line} -> {e.dst}" for e in import_edges() if e.in_function and not e.reason]
    assert unexplained == []


def test_only_packages_at_the_top() -> None:
    """tms_stack/ holds the layer packages; its only modules are __init__ (version) and __main__
    (the Pulumi entry point that Pulumi.yaml's `main: tms_stack/` runs)."""
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert modules == ["__init__.py", "__main__.py"], modules
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(RANKS) - {"__main__"} | {"agent"}, packages


def test_the_layout_checks_can_fail(tmp_path: Path) -> None:
    """The checks above find what they guard against, on a made-up package."""
    pkg = tmp_path / "tms_stack"
    for rel, text in {
        "__init__.py": "",
        "models/__init__.py": "",
        "models/a.py": "from tms_stack.rules.b import x\n",          # upward
        "rules/__init__.py": "",
        "rules/b.py": "def f():\n    from tms_stack.models.a import y\n",  # loop, hidden, no reason
        "agent/__init__.py": "",
        "agent/c.py": "from tms_stack.repo.d import z\n",             # the agent reading the repository
        "repo/__init__.py": "",
        "repo/d.py": "from tms_stack.outside.e import w\n",           # sideways
        "outside/__init__.py": "",
        "outside/e.py": "",
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    edges = import_edges(pkg)
    bad = upward(edges)
    assert any("models.a:1 -> tms_stack.rules.b" in b for b in bad), bad
    assert any("agent.c:1" in b for b in bad) and any("repo.d:1" in b for b in bad), bad
    assert circles(edges) == [["tms_stack.models.a", "tms_stack.rules.b"]]
    assert [e for e in edges if e.in_function and not e.reason]


# --- one error tree, one exit-code table ----------------------------------------------------------

def test_every_exception_class_is_in_the_error_tree() -> None:
    """Exceptions a user can cause derive from TmsError, which carries the exit code (docs/cli.md)."""
    outside = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and b.id in {"Exception", "ValueError", "RuntimeError", "OSError"}
                    for b in node.bases):
                outside.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert outside == ["models/diagnostics.py:TmsError"], outside


def test_exit_codes_are_defined_once() -> None:
    assignments = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant | ast.Tuple):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)] + [
                    e.id for t in node.targets if isinstance(t, ast.Tuple) for e in t.elts if isinstance(e, ast.Name)]
                if any(n.startswith("EXIT_") for n in names):
                    assignments.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert assignments == [], f"exit codes spelled outside models/diagnostics.py ExitCode: {assignments}"
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3]
    assert {cls.exit_code for cls in (PolicyFindings, Refused)} == {ExitCode.FINDINGS}
    assert Conflict.exit_code is ExitCode.CONFLICT and UnreadableInput.exit_code is ExitCode.USAGE


# --- docs/internals.md is a true map ----------------------------------------------------------------

INTERNALS = PACKAGE.parent / "docs" / "internals.md"


def test_internals_names_only_what_exists_and_every_package() -> None:
    text = INTERNALS.read_text()
    named = set(re.findall(r"`(tms_stack/[A-Za-z0-9_/.]*)`", text))
    missing = sorted(p for p in named if not (PACKAGE.parent / p.rstrip("/")).exists())
    assert missing == [], f"docs/internals.md names what does not exist: {missing}"
    packages = sorted({p.parent.relative_to(PACKAGE.parent).as_posix() + "/" for p in PACKAGE.rglob("__init__.py")}
                      - {"tms_stack/"})
    unnamed = [p for p in packages if f"`{p}`" not in text]
    assert unnamed == [], f"packages docs/internals.md does not name: {unnamed}"
    modules = sorted(p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*.py")
                     if p.name != "__init__.py")
    unmapped = [m for m in modules if f"`{m}`" not in text and f"`{m.rsplit('/', 1)[0]}/`" not in text]
    assert unmapped == [], f"modules docs/internals.md does not map: {unmapped}"


def test_api_version_is_spelled_once() -> None:
    """`tms-stack/v1` lives in tms_stack/__init__.py (the value) and models/common.py (the type)."""
    from typing import get_args

    from tms_stack import API_VERSION
    from tms_stack.models.common import ApiVersion

    assert get_args(ApiVersion) == (API_VERSION,)
    spelled = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if '"tms-stack/v1"' in p.read_text())
    assert spelled == ["__init__.py", "models/common.py"], spelled
