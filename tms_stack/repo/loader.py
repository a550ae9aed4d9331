"""Reads a repository tree (leases/, pools/, policies/) into typed models with positions.

Loading never raises for bad user input: unreadable files (broken YAML, unknown kind) and
schema errors become diagnostics, so `tms check` reports every problem in one run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tms_stack import API_VERSION
from tms_stack.models import KINDS, Allowlist, Lease, Limits, Pool, Repositories
from tms_stack.models.common import DNS1035, DNS1123, Metadata
from tms_stack.models.diagnostics import Diagnostic, TmsError, UnreadableInput
from tms_stack.models.pool import POOL_NAME
from tms_stack.repo.atomic import is_temp_file, temp_in_progress
from tms_stack.repo.yamlio import Document, parse_file

LOCK_FILE = "placement.lock.yaml"
DIR_KINDS = {"leases": ("Lease",), "pools": ("Pool",), "policies": ("Limits", "Allowlist", "Repositories")}


@dataclass
class Loaded:
    """One file that parsed and validated."""

    file: str
    doc: Document
    model: BaseModel


@dataclass
class Repository:
    root: Path
    leases: dict[str, Loaded] = field(default_factory=dict)
    pools: dict[str, Loaded] = field(default_factory=dict)
    limits: Limits = field(default_factory=lambda: Limits(apiVersion=API_VERSION, kind="Limits",
                                                           metadata=Metadata(name="defaults")))
    allowlist: Allowlist = field(default_factory=lambda: Allowlist(apiVersion=API_VERSION, kind="Allowlist",
                                                                   metadata=Metadata(name="defaults")))
    repositories: Repositories = field(default_factory=lambda: Repositories(
        apiVersion=API_VERSION, kind="Repositories", metadata=Metadata(name="defaults")))
    policy_files: dict[str, Loaded] = field(default_factory=dict)  # kind -> file
    unreadable: list[Diagnostic] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    invalid_leases: set[str] = field(default_factory=set)  # stems of lease files that failed schema
    invalid_policies: set[str] = field(default_factory=set)  # policy files that failed schema
    invalid_pools: set[str] = field(default_factory=set)  # stems of pool files that failed schema
    # The lease layout the policies ask for ("flat", "by-owner"), None when the Limits policy could
    # not be read (then both layouts are read, and no layout error is reported).
    lease_layout: str | None = "flat"
    # .github/CODEOWNERS as text (None: no such file); a symbolic link is never followed.
    codeowners: str | None = None
    codeowners_link: bool = False
    # CODEOWNERS files GitHub would read only if .github/CODEOWNERS went away (CODEOWNERS, docs/CODEOWNERS).
    codeowners_elsewhere: list[str] = field(default_factory=list)

    def lease(self, name: str) -> Lease:
        return self.leases[name].model  # type: ignore[return-value]

    def pool(self, name: str) -> Pool:
        return self.pools[name].model  # type: ignore[return-value]

    def all_leases(self) -> list[Lease]:
        return [entry.model for entry in self.leases.values()]  # type: ignore[misc]

    def all_pools(self) -> list[Pool]:
        return [entry.model for entry in self.pools.values()]  # type: ignore[misc]


def error_position(doc: Document, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
    """Map a pydantic `loc` onto the document: (path that exists, whether the last key is missing).

    Union members and validator tags appear in `loc` but not in the data; they are skipped.
    """
    node = doc.data
    path: list[Any] = []
    segments = list(loc)
    for i, seg in enumerate(segments):
        if isinstance(node, dict) and isinstance(seg, str) and seg in node or isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            node = node[seg]  # type: ignore[index]
            path.append(seg)
        elif isinstance(node, dict) and isinstance(seg, str) and i == len(segments) - 1:
            return tuple(path), True
        else:
            continue
    return tuple(path), False


def _pydantic_message(err: Any, doc: Document, path: tuple[Any, ...]) -> str:
    kind = err["type"]
    field_name = ".".join(str(p) for p in path) or "document"
    if kind == "missing":
        return f"{'.'.join(str(p) for p in err['loc'])}: required field is missing"
    if kind == "extra_forbidden":
        path[:-1]
        return f"{field_name}: unknown key {path[-1]!r} (allowed: see the file format in the user guide)"
    if kind == "literal_error":
        return f"{field_name}: {err['msg'].replace('Input should be', 'must be')}"
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    msg = msg.replace("Input should be", "must be")
    value = err.get("input")
    if kind == "string_type" and (value is None or isinstance(value, (bool, int, float))):
        # YAML 1.2 reads 08, 1e3, true and null as numbers, booleans and null: name the fix.
        as_yaml = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        what = ("null" if value is None else "a boolean" if isinstance(value, bool)
                else "an integer" if isinstance(value, int) else "a number")
        msg += f"; YAML reads this as {what} ({as_yaml}): put the text in quotes"
    return f"{field_name}: {msg}"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys a model accepts at `loc`, for 'unknown key' messages."""
    current: Any = model
    for seg in loc[:-1]:
        if isinstance(seg, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or seg not in fields:
            return None
        current = _model_of(fields[seg].annotation)
        if current is None:
            return None
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else None


def _model_of(annotation: Any) -> Any:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def validation_diagnostics(file: str, doc: Document, model: type[BaseModel], exc: ValidationError) -> list[Diagnostic]:
    out: dict[tuple[int, int, str], Diagnostic] = {}
    rule = f"{model.__name__.lower()}.schema"
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path, missing = error_position(doc, loc)
        if err["type"] == "extra_forbidden":
            pos = doc.key_pos(path)
            allowed = _allowed_keys(model, loc)
            where = ".".join(str(p) for p in path[:-1]) or "top level"
            msg = f"unknown key {path[-1]!r} in {where}"
            if allowed:
                msg += f": allowed keys are {', '.join(allowed)}"
        else:
            # Errors about a whole mapping or list point at its key, where the reader looks.
            pos = doc.key_pos(path) if missing or err["type"] == "missing" or _is_container(doc, path) else doc.pos(path)
            msg = _pydantic_message(err, doc, path)
        diag = Diagnostic(file, pos.line, pos.col, rule, msg)
        out.setdefault((pos.line, pos.col, msg), diag)
    # A union reports once per member; keep the most specific message per position.
    by_pos: dict[tuple[int, int], list[Diagnostic]] = {}
    for d in out.values():
        by_pos.setdefault((d.line, d.col), []).append(d)
    result = []
    for diags in by_pos.values():
        value_errors = [d for d in diags if "is not" in d.message or "must satisfy" in d.message]
        result.extend(value_errors[:1] if value_errors else diags[:1])
    return sorted(result)


def _is_container(doc: Document, path: tuple[Any, ...]) -> bool:
    node = doc.data
    for seg in path:
        try:
            node = node[seg]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, (dict, list)) and bool(path)


# Files a folder may hold besides `<name>.yaml` without being read (they change nothing).
IGNORED_FILES = {".gitkeep", ".keep", "README.md"}


def scan_folder(root: Path, folder: str) -> tuple[list[Path], list[Diagnostic]]:
    """The `<name>.yaml` files of `root/folder`, and an error for everything else found there.

    Whatever is silently skipped can hide a lease from review or smuggle one in: a symlink is
    followed out of the repository (and prune would rewrite its target), `a.yml` shadowed
    `a.yaml`, `.YAML`, subfolders and folders named `x.yaml` were ignored. So each is an error
    naming the path (rule `files.layout`), and nothing but a regular `*.yaml` file is read."""
    base = root / folder
    if base.is_symlink():
        return [], [Diagnostic(folder, 0, 0, "files.layout",
                               f"{folder}/ is a symbolic link: it must be a folder inside the repository")]
    if not base.is_dir():
        return [], []
    files: list[Path] = []
    found: list[Diagnostic] = []
    # os.scandir: the entry's type comes with the listing, so a regular file costs no stat call
    # here (10,000 leases: 40,000 stat calls and sorting Path objects were ~0.5 s of a check).
    with os.scandir(base) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and entry.name not in IGNORED_FILES:
            found.append(Diagnostic(f"{folder}/{entry.name}", 0, 0, "files.layout",
                                    f"this is a folder: {folder}/ holds only <name>.yaml files, no subfolders"))
            continue
        one, problems = _scan_one(base / entry.name, folder, entry)
        files += one
        found += problems
    return files, found


def scan_leases(root: Path, layout: str | None) -> tuple[list[Path], list[Diagnostic]]:
    """The lease files for `layout`: flat, `leases/<name>.yaml` only (a subfolder is an error, as
    before owner folders existed); by-owner (or None: layout unknown), also `leases/<owner>/<name>.yaml`
    one level deep, where <owner> must be a valid owner name. Flat files under by-owner are still
    read, so that rule lease.folder can say where each one belongs."""
    if layout == "flat":
        return scan_folder(root, "leases")
    base = root / "leases"
    if base.is_symlink() or not base.is_dir():
        return scan_folder(root, "leases")
    files: list[Path] = []
    found: list[Diagnostic] = []
    for path in sorted(base.iterdir()):
        if path.is_dir() and not path.is_symlink():
            if not DNS1123.fullmatch(path.name):
                found.append(Diagnostic(f"leases/{path.name}", 0, 0, "files.layout",
                                        "an owner folder is named after an owner (lowercase letters, digits and "
                                        "'-'): leases/<owner>/<name>.yaml"))
                continue
            inner, problems = scan_folder(root, f"leases/{path.name}")
            files += inner
            found += problems
            continue
        one, problems = _scan_one(path, "leases")
        files += one
        found += problems
    return files, found


def _scan_one(path: Path, folder: str, entry: os.DirEntry[str] | None = None) -> tuple[list[Path], list[Diagnostic]]:
    """What scan_folder says about one entry that is not a folder (`entry`: its listing, when known)."""
    display = f"{folder}/{path.name}"
    problem = None
    if entry.is_symlink() if entry is not None else path.is_symlink():
        target = "a dangling symbolic link" if not path.exists() else "a symbolic link"
        problem = f"this is {target}: commit the file itself (links are never followed)"
    elif path.name in IGNORED_FILES:
        return [], []
    elif not (entry.is_file(follow_symlinks=False) if entry is not None else path.is_file()):
        problem = "this is not a regular file"
    elif is_temp_file(path.name) or path.suffix == ".tmp":
        if temp_in_progress(path):
            return [], []  # another tms command is writing it right now; it is renamed in a moment
        again = " (the lock is recomputed with `tms pool lock`)" if folder == "pools" else ""
        problem = ("a temporary file left by an interrupted write: delete it; it may be incomplete, so "
                   f"never rename it into place{again}")
    elif path.suffix != ".yaml":
        problem = f"only <name>.yaml files belong in {folder}/ (rename it to {path.stem}.yaml, or remove it)"
    if problem:
        return [], [Diagnostic(display, 0, 0, "files.layout", problem)]
    return [path], []


def read_codeowners(root: Path, repo: Repository) -> None:
    repo.codeowners_elsewhere = [rel for rel in ("CODEOWNERS", "docs/CODEOWNERS")
                                 if (root / rel).exists() or (root / rel).is_symlink()]
    path = root / ".github" / "CODEOWNERS"
    if path.is_symlink() or (root / ".github").is_symlink():
        repo.codeowners_link = True
    elif path.is_file():
        try:
            # newline="": compared byte for byte, CRLF included (the file is generated).
            with path.open(encoding="utf-8", newline="") as handle:
                repo.codeowners = handle.read()
        except (OSError, UnicodeDecodeError):
            repo.codeowners = ""


def member_path(root: Path, folder: str, name: str) -> Path:
    """`root/leases/<name>.yaml` or `root/pools/<name>.yaml` for a verb that will read, write or
    delete it. Refuses (TmsError) a name that is not a valid lease or pool name before anything
    touches the filesystem (`tms lease release ../policies/allowlist` deleted the allowlist), and
    a path that is a symbolic link."""

    if folder == "leases" and not DNS1035.fullmatch(name):
        raise TmsError(f"{name!r} is not a lease name: use 1-63 lowercase letters, digits and '-', "
                       "starting with a letter and ending with a letter or digit")
    if folder == "pools" and not POOL_NAME.fullmatch(name):
        raise TmsError(f"{name!r} is not a pool name: use 8-512 characters of A-Z a-z 0-9 _ -")
    if folder not in ("leases", "pools"):
        raise TmsError(f"{folder!r}: verbs edit leases/ and pools/ only")
    path = root / folder / f"{name}.yaml"
    for link in (root / folder, path):
        if link.is_symlink():
            raise TmsError(f"{link} is a symbolic link: refusing to follow it")
    return path


def load_file(path: Path, display: str, allowed_kinds: tuple[str, ...]) -> tuple[Loaded | None, list[Diagnostic], list[Diagnostic]]:
    """(loaded, unreadable, invalid) for one file."""
    try:
        doc = parse_file(path, display)
    except UnreadableInput as exc:
        return None, exc.diagnostics, []
    data = doc.data
    if not isinstance(data, dict):
        return None, [Diagnostic(display, 1, 1, "yaml", "expected a YAML mapping with apiVersion and kind")], []
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        pos = doc.pos(("kind",)) if "kind" in data else doc.pos(())
        what = f"unknown kind {kind!r}" if "kind" in data else "missing kind"
        return None, [Diagnostic(display, pos.line, pos.col, "kind",
                                 f"{what}: allowed here: {', '.join(allowed_kinds)}")], []
    if kind not in allowed_kinds:
        pos = doc.pos(("kind",))
        return None, [Diagnostic(display, pos.line, pos.col, "kind",
                                 f"a {kind} does not belong here: this folder holds {', '.join(allowed_kinds)}")], []
    model_cls = KINDS[kind]
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        return None, [], validation_diagnostics(display, doc, model_cls, exc)
    return Loaded(display, doc, model), [], []


def load_repository(root: Path, progress: Callable[[int, int], None] | None = None,
                    read: Callable[[Path, str, tuple[str, ...]], tuple[Loaded | None, list[Diagnostic], list[Diagnostic]]]
                    | None = None) -> Repository:
    """`read`: answers `load_file`'s question for one file (repo/parsecache.py: from a cache)."""
    root = Path(root)
    repo = Repository(root=root)
    policies, problems = scan_folder(root, "policies")
    repo.diagnostics.extend(problems)
    # A policy that is not read must not let leases be judged against TMS defaults.
    repo.invalid_policies.update(d.file for d in problems)
    _load_files(repo, [("policies", path) for path in policies], None, read or load_file)
    # The policies come first: where lease files live is one of them (spec.leaseLayout).
    repo.lease_layout = None if repo.invalid_policies else repo.limits.spec.leaseLayout
    files: list[tuple[str, Path]] = []
    for folder in ("leases", "pools"):
        found, layout = scan_leases(root, repo.lease_layout) if folder == "leases" else scan_folder(root, folder)
        repo.diagnostics.extend(layout)
        for path in found:
            if folder == "pools" and path.name == LOCK_FILE:
                continue
            files.append((folder, path))
    _load_files(repo, files, progress, read or load_file)
    read_codeowners(root, repo)
    return repo


def _load_files(repo: Repository, files: list[tuple[str, Path]],
                progress: Callable[[int, int], None] | None, read: Callable[..., Any] = load_file) -> None:
    root = repo.root
    prefix = f"{root}{os.sep}"
    seen: dict[str, str] = {}  # lease name (file stem) -> the file that has it
    for i, (folder, path) in enumerate(files):
        # Every path here was found under root by scan_folder: cutting the prefix is relative_to.
        text = str(path)
        display = text[len(prefix):] if text.startswith(prefix) and os.sep == "/" else path.relative_to(root).as_posix()
        if folder == "leases":
            if path.stem in seen:
                # Names are unique across owner folders: the verbs, the lock and every rendered
                # object know a lease by its name alone.
                repo.diagnostics.append(Diagnostic(display, 1, 1, "lease.duplicate",
                                                   f"lease name {path.stem!r} is taken by {seen[path.stem]}: lease "
                                                   "names are unique across owner folders; rename or remove one"))
                continue
            seen[path.stem] = display
        loaded, unreadable, invalid = read(path, display, DIR_KINDS[folder])
        repo.unreadable.extend(unreadable)
        repo.diagnostics.extend(invalid)
        if folder == "leases" and loaded is None:
            repo.invalid_leases.add(path.stem)
        if folder == "pools" and loaded is None:
            repo.invalid_pools.add(path.stem)
        if folder == "policies" and (invalid or unreadable):
            repo.invalid_policies.add(display)
        if progress and (i % 500 == 0 or i == len(files) - 1):
            progress(i + 1, len(files))
        if loaded is None:
            continue
        model = loaded.model
        if isinstance(model, Lease):
            repo.leases[path.stem] = loaded
        elif isinstance(model, Pool):
            repo.pools[path.stem] = loaded
        else:
            kind = type(model).__name__
            if kind in repo.policy_files:
                first = repo.policy_files[kind].file
                pos = loaded.doc.pos(("kind",))
                repo.diagnostics.append(Diagnostic(display, pos.line, pos.col, "policy.duplicate",
                                                   f"a second {kind} policy: {first} already defines it; merge them"))
                continue
            repo.policy_files[kind] = loaded
            if isinstance(model, Limits):
                repo.limits = model
            elif isinstance(model, Allowlist):
                repo.allowlist = model
            elif isinstance(model, Repositories):
                repo.repositories = model
