"""Writing prune's decisions, so that main never breaks (issue 21, "Prune must never break main").

Every edit is made first on a scratch copy, and the whole `tms check` runs there at the same `now`:
prune writes only a tree that adds no check error to the one it found. A renewal that cannot be
written safely (an `expires` form check refuses, a rewrite that would change more than the value,
or a file the check then fails) is given up: reported, and the lease deleted instead when it is
past its grace; the other renewals and the deletions still go ahead. If the deletions alone would
fail the check, nothing is written and prune stops (exit 1), naming the findings."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import yaml

from tms_stack.commands.check import run_check
from tms_stack.commands.prune import PruneResult, Renewal
from tms_stack.logic.pool_lock import compute
from tms_stack.models import Lease, units
from tms_stack.models.diagnostics import Conflict, Diagnostic, PolicyFindings, Severity, UnreadableInput
from tms_stack.repo.atomic import replace_files
from tms_stack.repo.loader import Repository, load_file, load_repository
from tms_stack.repo.lockfile import DISPLAY, read_lock, write_lock
from tms_stack.repo.yamlio import parse
from tms_stack.rules.leases import expires_form_message

EXPIRES = ("spec", "expires")


def rewrite_expires(text: str, new: datetime) -> str:
    """Replace the value of `spec.expires` and nothing else: plain or quoted, with a space before
    the time, in block or flow style, or on the next line. The span comes from the YAML parser's
    own marks, so no form is guessed at; the new value is a plain ISO timestamp in UTC, valid in
    block and flow context alike. Forms whose span is not just the value (an anchor, an alias, a
    tag, a block scalar) are refused with ValueError (check refuses them too: lease.expires-form)."""
    try:
        form = parse(text, "lease").forms.get(EXPIRES)
    except UnreadableInput as exc:
        raise ValueError(str(exc)) from None
    if form is not None:
        raise ValueError(expires_form_message(form))
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    node = _child(_child(root, "spec"), "expires")
    if node is None or not isinstance(node, yaml.ScalarNode):
        raise ValueError("no scalar spec.expires to rewrite")
    a, b = node.start_mark.index, node.end_mark.index
    return text[:a] + units.format_utc(new) + text[b:]


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def safe_rewrite(text: str, new: datetime) -> str:
    """`rewrite_expires`, then proof that only the value changed: the new file parses, its
    `expires` is `new`, and every other value is what it was. ValueError says why not."""
    out = rewrite_expires(text, new)
    try:
        before, after = parse(text, "before"), parse(out, "after")
    except UnreadableInput as exc:
        raise ValueError(f"the rewritten file would not parse: {exc}") from None
    old_data, new_data = before.data, after.data
    spec_old = dict(old_data.get("spec") or {}) if isinstance(old_data, dict) else {}
    spec_new = dict(new_data.get("spec") or {}) if isinstance(new_data, dict) else {}
    written = spec_new.pop("expires", None)
    spec_old.pop("expires", None)
    if not isinstance(written, datetime) or written != new or after.forms.get(EXPIRES) is not None:
        raise ValueError("the rewritten `expires` would not read back as the new time")
    if spec_old != spec_new or {k: v for k, v in old_data.items() if k != "spec"} != \
            {k: v for k, v in new_data.items() if k != "spec"}:
        raise ValueError("rewriting `expires` would change other values of the file")
    return out


# What `tms check` reads from a repository checkout (rules never look elsewhere).
_CHECKED_FOLDERS = ("leases", "pools", "policies", ".github")


def _scratch(root: Path, dest: Path) -> None:
    for part in _CHECKED_FOLDERS:
        if (root / part).is_dir() and not (root / part).is_symlink():
            shutil.copytree(root / part, dest / part, symlinks=True)
    for path in root.glob("Pulumi*.yaml"):
        if path.is_file() and not path.is_symlink():
            shutil.copy2(path, dest / path.name)


def _errors(root: Path, now: datetime) -> list[Diagnostic]:
    result = run_check(root, now)
    return [d for d in result.all() if d.severity is Severity.ERROR or d in result.unreadable]


def _key(d: Diagnostic) -> tuple[str, str, str]:
    return (d.file, d.rule, d.message)


def _still_as_decided(root: Path, result: PruneResult) -> None:
    """Every file prune will touch still has the `expires` it was judged by: a renewal or release
    made while telemetry was asked is never overwritten (issue 22). Raises Conflict (exit 3)."""
    judged = [(r.file, r.old) for r in result.renewed] + [(file, ts) for _n, file, ts in result.expired]
    for file, expires in judged:
        path = root / file
        loaded = load_file(path, file, ("Lease",))[0] if path.is_file() else None
        if loaded is None or loaded.model.spec.expires != expires:  # type: ignore[attr-defined]
            raise Conflict(f"{file} changed while prune ran (another command edited it): nothing was written; "
                           "run tms prune again")


def _edits(root: Path, repo: Repository, result: PruneResult, texts: dict[str, str]) -> dict[str, str | None]:
    """Root-relative path -> new text (None: delete), placement lock included."""
    edits: dict[str, str | None] = dict(texts)
    pooled_gone = False
    for _name, file, _ in result.expired:
        edits[file] = None
        lease: Lease = repo.leases[Path(file).stem].model  # type: ignore[assignment]
        pooled_gone |= lease.spec.pool is not None
    if pooled_gone:
        with tempfile.TemporaryDirectory(prefix="tms-prune-lock-") as tmp:
            scratch = Path(tmp)
            _scratch(root, scratch)
            for rel, text in edits.items():
                (scratch / rel).unlink() if text is None else (scratch / rel).write_text(text, encoding="utf-8")
            if write_lock(scratch, compute(load_repository(scratch), read_lock(scratch)).lock):
                edits[DISPLAY] = (scratch / DISPLAY).read_text(encoding="utf-8")
    return edits


def _give_up(result: PruneResult, renewal: Renewal, why: str, now: datetime, grace_text: str) -> None:
    result.renewed.remove(renewal)
    grace = units.parse_duration(grace_text)
    if now - renewal.old > grace:
        result.expired.append((renewal.lease, renewal.file, renewal.old))
        result.unrenewable.append((renewal.lease, renewal.file, f"{why} (deleted: grace {grace_text} over)"))
    else:
        result.unrenewable.append((renewal.lease, renewal.file,
                                   f"{why} (left as it is until the grace {grace_text} is over)"))


def apply(root: Path, repo: Repository, result: PruneResult, now: datetime, write: bool = True) -> list[Path]:
    """Write the decisions (after the check gate above); returns the paths touched (or, with
    `write=False` for --dry-run, that would be). `result` is updated in place with what was given
    up, so the report says what really happens."""
    grace_text = str(repo.limits.spec.autoRenew.unknownGrace)
    texts: dict[str, str] = {}
    for renewal in list(result.renewed):
        try:
            texts[renewal.file] = safe_rewrite((root / renewal.file).read_text(encoding="utf-8"), renewal.new)
        except (ValueError, OSError) as exc:
            _give_up(result, renewal, f"cannot rewrite expires safely: {exc}", now, grace_text)
    with tempfile.TemporaryDirectory(prefix="tms-prune-") as tmp:
        before = Path(tmp) / "before"
        before.mkdir()
        _scratch(root, before)
        baseline = {_key(d) for d in _errors(before, now)}
        while True:
            edits = _edits(root, repo, result, texts)
            after = Path(tmp) / "after"
            shutil.rmtree(after, ignore_errors=True)
            after.mkdir()
            _scratch(root, after)
            for rel, text in edits.items():
                (after / rel).unlink() if text is None else (after / rel).write_text(text, encoding="utf-8")
            new = [d for d in _errors(after, now) if _key(d) not in baseline]
            if not new:
                break
            renewed = {r.file: r for r in result.renewed}
            culprits = [renewed[d.file] for d in new if d.file in renewed]
            if not culprits and renewed:
                culprits = list(renewed.values())   # cannot tell which renewal: renew none of them
            if not culprits:
                raise PolicyFindings("prune's edits would not pass `tms check`; nothing was written:\n" + "\n".join(
                    f"  {d.location()}: {d.message} [{d.rule}]" for d in new), new)
            for renewal in dict.fromkeys(culprits):
                why = next((f"the renewed file would fail tms check: {d.location()}: {d.message} [{d.rule}]"
                            for d in new if d.file == renewal.file), "the renewals would fail tms check")
                _give_up(result, renewal, why, now, grace_text)
                texts.pop(renewal.file, None)
    changes: dict[Path, str | None] = {}
    for rel, text in edits.items():
        path = root / rel
        if text is not None and path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        changes[path] = text
    if write and changes:
        # All together or not at all (repo/atomic.py), and only over what was judged.
        _still_as_decided(root, result)
        replace_files(changes)
    return list(changes)
