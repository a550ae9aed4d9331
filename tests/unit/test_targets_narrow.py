"""`tms plan --targets` through the parse cache and the narrowed rendering (issue 27) answers as
the full one (`--no-cache`: both trees rendered whole) on random edits of a small repository,
cold and warm: the same URNs, groups and whole-stack reason, or the same refusal."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import copy_example
from tests.lifecycle.test_shard_stacks import SHARDS
from tests.unit.test_review_incremental import NOW, Change, apply, cache_at, changes, git
from tms_stack.commands.targets import compute_targets, describe
from tms_stack.models.diagnostics import TmsError


def _targets(repo: Path, cache: bool) -> object:
    try:
        return describe(compute_targets(repo, "main", "example", NOW, cache=cache))
    except TmsError as exc:
        return f"{type(exc).__name__}: {exc}"


@settings(max_examples=int(os.environ.get("TMS_PROPERTY_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(changes, min_size=1, max_size=4), st.booleans())
def test_narrowed_targets_equal_the_full_ones(edits: list[Change], sharded: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="tms-targets-narrow-") as tmp:
        repo = copy_example(Path(tmp) / "repo")
        if sharded:  # three stacks: every URN names the stack that holds its group
            stack_file = repo / "Pulumi.example.yaml"
            stack_file.write_text(stack_file.read_text() + SHARDS)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "base")
        for change in edits:
            apply(repo, change)
        with cache_at(Path(tmp) / "cache"):
            full = _targets(repo, cache=False)
            cold = _targets(repo, cache=True)
            warm = _targets(repo, cache=True)
    assert cold == full
    assert warm == full


def test_one_changed_lease_renders_only_its_groups(monkeypatch, tmp_path: Path) -> None:
    """The narrowing is really used: with one lease edited, both renderings make only that lease's
    group, its names and Monitoring (not every lease of the fleet)."""
    import tms_stack.commands.render as render_mod

    repo = copy_example(tmp_path / "repo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    lease = repo / "leases" / "image-classifier.yaml"
    lease.write_text(lease.read_text().replace("name: resnet50", "name: resnet101"))
    rendered: list[list[str]] = []
    real = render_mod.render_repository

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        groups = real(*args, **kwargs)
        rendered.append(sorted(g.key for g in groups))
        return groups

    monkeypatch.setattr(render_mod, "render_repository", spy)
    with cache_at(tmp_path / "cache"):
        narrowed = describe(compute_targets(repo, "main", "example", NOW, cache=True))
        assert len(rendered) == 2 and all(r == rendered[0] for r in rendered), rendered
        assert [k for k in rendered[0] if k.startswith(("Lease/", "Pool/"))] == ["Lease/image-classifier"], rendered
        rendered.clear()
        full = describe(compute_targets(repo, "main", "example", NOW, cache=False))
        assert len(rendered) == 2 and len([k for k in rendered[0] if k.startswith("Lease/")]) > 1, rendered
    assert narrowed == full and narrowed["groups"] == ["Lease/image-classifier"]
