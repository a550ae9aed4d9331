"""The whole-render name rule (tms_stack/rules/ownership.py): its safety net fires, and its
per-shape shortcut names exactly what a full render of each lease names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NOW
from tms_stack.commands.check import run_check
from tms_stack.models.stack import StackSettings
from tms_stack.repo.loader import load_repository
from tms_stack.rules import ownership
from tms_stack.rules.context import Ctx


def test_a_name_rendered_twice_is_an_error_naming_both_files(example_repo: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """No input reaches names.owner past the specific rules today; a render that repeats a name
    (here: a pool instance that would also render a ConfigMap named like a lease) must still fail."""
    real = ownership.render_pool

    def render_pool(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        objects = real(*args, **kwargs)
        return [*objects, {"kind": "ConfigMap", "metadata": {"name": "image-classifier"}}]

    monkeypatch.setattr(ownership, "render_pool", render_pool)
    found = [d for d in run_check(example_repo, NOW).all() if d.rule == "names.owner"]
    assert [(d.file, d.line) for d in found] == [("leases/image-classifier.yaml", 5)]
    assert "ConfigMap 'image-classifier' is rendered from this file and from pools/" in found[0].message


def test_shapes_name_what_a_full_render_names(example_repo: Path) -> None:
    leases = example_repo / "leases"
    text = (leases / "fraud-detector.yaml").read_text()
    # Same shape as fraud-detector (autoscaled, one alias), other names: must map onto its own.
    (leases / "fraud-b.yaml").write_text(text.replace("name: fraud-detector", "name: fraud-b")
                                         .replace("names: [fraud]", "names: [fraud-two]"))
    (leases / "chat-b.yaml").write_text((leases / "chat-small.yaml").read_text()
                                        .replace("name: chat-small", "name: chat-b").replace("[chat]", "[chat-two]"))
    repo = load_repository(example_repo)
    ctx, settings = Ctx(repo), StackSettings()
    shapes = ownership._Shapes(ctx, settings)
    for lease in sorted(repo.all_leases(), key=lambda lease: lease.name):
        direct = [(o["kind"], o["metadata"]["name"]) for o in ownership._lease_objects(ctx, lease, settings)]
        assert shapes.names(lease) == direct, lease.name
    assert len(shapes.cache) < len(repo.leases)  # the shortcut was taken
