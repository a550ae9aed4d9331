"""What a pull request changes in admin-owned paths, for the top of the plan comment.

"Raise the GPU maximum and allowlist an attacker's image" must not hide behind "1 lease added":
every changed file outside `leases/` (policies, pools, stack files, tool code, workflows, scripts)
is listed, with the diff of the effective policies (old → new values, allowlist additions), pool
specs and stack settings (`config:` and where state and secrets live: secrets provider, encryption
salt, environments, backend). The placement lock is derived and verified against the base's
(`lock.derived`), so it is not listed here (its effect is the plan's "Placement changes")."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tms_stack.models.diagnostics import TmsError
from tms_stack.repo.loader import LOCK_FILE, Repository
from tms_stack.repo.yamlio import parse_file

# Paths a lease author may change without an admin (CODEOWNERS leaves them unowned).
USER_PATHS = ("leases/", f"pools/{LOCK_FILE}")
# Only git's own folder is left out: every other path a pull request holds is listed, at any depth,
# caches and environments included (a `.pyc` Python imports instead of the reviewed source was once
# invisible here); rules/generated.py refuses them.
SKIP_DIRS = {".git"}
# Byproducts of running the base's own code (a local `tms plan --base-dir` of a checkout that ran):
# never a risk when only the base has them, so a "removed" one is not listed.
BASE_BYPRODUCTS = ("__pycache__/", ".mypy_cache/", ".pytest_cache/", ".ruff_cache/", ".hypothesis/")
# Stack settings whose change alters what runs with credentials in every pod.
SENSITIVE_SETTINGS = ("tms-stack:agentImage", "tms-stack:tritonImage", "tms-stack:imagePullSecrets")
# Stack file keys beside `config:` that say where the state and the secrets live: a changed secrets
# provider or encryption salt re-keys (or hands over) every secret, an ESC environment injects
# configuration, a backend URL sends the state elsewhere (Pulumi.yaml: `backend.url`, `main`).
STACK_KEYS = ("environment", "secretsprovider", "encryptionsalt", "encryptedkey", "backend")
PROJECT_KEYS = ("backend", "main", "runtime", "options", "name")
MAX_LINES = 100


@dataclass
class AdminChanges:
    files: list[tuple[str, str]] = field(default_factory=list)      # (path, added|removed|changed)
    policies: list[str] = field(default_factory=list)               # "path: old → new" lines
    pools: list[str] = field(default_factory=list)
    stack: list[str] = field(default_factory=list)
    sensitive: list[str] = field(default_factory=list)               # settings from SENSITIVE_SETTINGS
    backend: list[str] = field(default_factory=list)                 # STACK_KEYS / PROJECT_KEYS, old → new
    cut: int = 0                                                     # lines left out (MAX_LINES each)

    def __bool__(self) -> bool:
        return bool(self.files)


def is_admin_path(path: str) -> bool:
    return not any(path == p or path.startswith(p) for p in USER_PATHS)


def _digest(path: str) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under root as a digest (links as their target text), without following links or
    entering caches; digests, not contents, so a large checkout costs no memory."""
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not os.path.islink(os.path.join(dirpath, d)))
        names = filenames + [d for d in os.listdir(dirpath) if os.path.islink(os.path.join(dirpath, d))
                             and d not in filenames]
        for name in names:
            if name == ".git":      # a worktree's .git is a file naming its git dir
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            try:
                if os.path.islink(full):
                    out[rel] = b"symlink -> " + os.readlink(full).encode(errors="replace")
                elif os.path.isfile(full):
                    out[rel] = _digest(full)
            except OSError:
                out[rel] = b"unreadable"
    return out


def _byproduct(path: str) -> bool:
    return path.endswith((".pyc", ".pyo")) or any(f"/{d}" in f"/{path}" for d in BASE_BYPRODUCTS)


def changed_files_between(base: Path, head: Path) -> list[tuple[str, str]]:
    a, b = _tree(base), _tree(head)
    rows = [(p, "added") for p in b if p not in a]
    rows += [(p, "removed") for p in a if p not in b and not _byproduct(p)]
    rows += [(p, "changed") for p in a.keys() & b.keys() if a[p] != b[p]]
    return sorted(rows)


def changed_files_git(root: Path, ref: str) -> list[tuple[str, str]]:
    """Files differing from `ref` in the work tree (tracked changes and untracked files)."""
    def lines(*args: str) -> list[str]:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return proc.stdout.splitlines() if proc.returncode == 0 else []

    kinds = {"A": "added", "D": "removed"}
    rows = []
    for line in lines("diff", "--name-status", "--no-renames", ref, "--"):
        status, _, path = line.partition("\t")
        rows.append((path, kinds.get(status[:1], "changed")))
    rows += [(p, "added") for p in lines("ls-files", "--others", "--exclude-standard")]
    return sorted(set(rows))


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to scalars; lists of scalars stay whole (diffed as sets), lists of mappings are
    keyed by their name field when they have one."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            key = next((str(v[k]) for k in ("repositoryName", "targetUri", "name") if k in v), str(i))
            out.update(flatten(v, f"{prefix}[{key}]"))
        return out
    return {prefix: value}


def _show(v: Any) -> str:
    if v is None:
        return "(unset)"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def diff_lines(old: dict[str, Any], new: dict[str, Any], label: str = "") -> list[str]:
    a, b = flatten(old), flatten(new)
    out = []
    for key in sorted(a.keys() | b.keys()):
        x, y = a.get(key), b.get(key)
        if x == y:
            continue
        name = f"{label}{key}"
        if isinstance(x, list | type(None)) and isinstance(y, list | type(None)) and (x or y):
            xs, ys = [_show(i) for i in x or []], [_show(i) for i in y or []]
            out += [f"{name} + {i}" for i in ys if i not in xs]
            out += [f"{name} − {i}" for i in xs if i not in ys]
            if not (set(xs) ^ set(ys)):
                out.append(f"{name}: reordered")
        else:
            out.append(f"{name}: {_show(x)} → {_show(y)}")
    return out


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True) if model is not None else {}


def _pool_summary(d: dict[str, Any]) -> str:
    spec = d.get("spec") or {}
    inst, triton = spec.get("instances") or {}, spec.get("triton") or {}
    gpu = (triton.get("resources") or {}).get("gpu")
    gpus = "default GPUs" if gpu is None else f"{gpu} GPU(s)"
    return (f"owner {(d.get('metadata') or {}).get('owner')}, {inst.get('min')}..{inst.get('max')} instances "
            f"× {gpus}, image {triton.get('image') or '(allowlist default)'}")


def _stack_document(root: Path, name: str) -> dict[str, Any] | str:
    path = root / name
    if not path.is_file() or path.is_symlink():
        return {}
    try:
        data = parse_file(path, name).data
    except (TmsError, OSError, ValueError) as exc:
        return f"unreadable: {exc}"
    return data if isinstance(data, dict) else {}


def _config(doc: dict[str, Any]) -> dict[str, Any]:
    """`config:` of a stack file (Pulumi.yaml's `config:` declares settings; diffed alike)."""
    config = doc.get("config")
    return config if isinstance(config, dict) else {}


def admin_changes(old: Repository, new: Repository, files: list[tuple[str, str]]) -> AdminChanges:
    """`old`/`new`: the base's and the PR's repositories as `tms check` loaded them."""
    out = AdminChanges(files=[(p, k) for p, k in files if is_admin_path(p)])
    if not out:
        return out
    paths = {p for p, _ in out.files}
    if any(p.startswith("policies/") for p in paths):
        for kind, attr in (("Limits", "limits"), ("Allowlist", "allowlist"), ("Repositories", "repositories")):
            a, b = _dump(getattr(old, attr)).get("spec", {}), _dump(getattr(new, attr)).get("spec", {})
            label = {"Limits": "limits ", "Allowlist": "allowlist ", "Repositories": "repositories "}[kind]
            out.policies += diff_lines(a, b, label)
        if new.invalid_policies or any(d.file.startswith("policies/") for d in new.unreadable):
            out.policies.append("(a policy file does not pass `tms check`: its values are not shown)")
    if any(p.startswith("pools/") for p in paths):
        for name in sorted(old.pools.keys() | new.pools.keys()):
            a = _dump(old.pool(name)) if name in old.pools else {}
            b = _dump(new.pool(name)) if name in new.pools else {}
            if not a:
                out.pools.append(f"pool {name} added: {_pool_summary(b)}")
            elif not b:
                out.pools.append(f"pool {name} removed")
            elif a != b:
                out.pools += [f"pool {name}: {line}" for line in diff_lines(a, b)]
    for path in sorted(p for p in paths if p.startswith("Pulumi.") and p.endswith(".yaml") and "/" not in p):
        a_doc, b_doc = _stack_document(old.root, path), _stack_document(new.root, path)
        if isinstance(a_doc, str) or isinstance(b_doc, str):
            out.stack.append(f"{path}: {b_doc if isinstance(b_doc, str) else a_doc}")
            continue
        project = path == "Pulumi.yaml"
        for line in diff_lines(_config(a_doc), _config(b_doc), f"{path} "):
            # Listed once: a sensitive setting goes in its own list at the top, not again here.
            if any(line.startswith(f"{path} {key}") for key in SENSITIVE_SETTINGS):
                out.sensitive.append(line)
            else:
                out.stack.append(line)
        keys = PROJECT_KEYS if project else STACK_KEYS
        # Every other top-level key too: an unknown one may be a setting of a newer Pulumi.
        others = sorted(k for k in (a_doc.keys() | b_doc.keys()) if isinstance(k, str) and k != "config")
        for key in [*keys, *(k for k in others if k not in keys)]:
            if a_doc.get(key) != b_doc.get(key):
                lines = diff_lines({key: a_doc.get(key)}, {key: b_doc.get(key)}, f"{path} ")
                (out.backend if key in keys else out.stack).extend(lines)
    for attr in ("files", "policies", "pools", "stack", "sensitive", "backend"):
        lines = getattr(out, attr)
        if len(lines) > MAX_LINES:
            out.cut += len(lines) - MAX_LINES
            setattr(out, attr, lines[:MAX_LINES])
    return out
