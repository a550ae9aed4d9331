"""`tms plan --targets`: the URNs a targeted `pulumi up` must touch (tms_stack/commands/targets.py).

The engine test (tests/e2e/test_pulumi_engine.py) shows a targeted up with these URNs leaves
nothing behind; here: exactly which URNs, that they are the URNs the program really registers
(Pulumi's mocks), and the fall-backs to the whole stack."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pulumi

from tests.conftest import NOW
from tests.lifecycle.test_plan import TMS, git

PREFIX = "urn:pulumi:example::tms-stack::"


def _commit(repo: Path) -> None:
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")


def targets(repo: Path, *extra: str) -> tuple[list[str], str]:
    p = subprocess.run([TMS, "plan", "--base", "main", "--targets", "--now", "2026-11-22T00:00:00Z", *extra],
                       cwd=repo, capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines(), p.stderr


def test_one_changed_lease_targets_its_component_and_the_changed_object_only(example_repo: Path) -> None:
    _commit(example_repo)
    lease = example_repo / "leases" / "image-classifier.yaml"
    lease.write_text(lease.read_text().replace("name: resnet50", "name: resnet101"))
    urns, log = targets(example_repo)
    assert urns == [f"{PREFIX}tms:index:Lease::image-classifier",
                    f"{PREFIX}tms:index:Lease$kubernetes:core/v1:ConfigMap::image-classifier:ConfigMap:image-classifier"]
    assert "1 group(s) changed: Lease/image-classifier (2 URNs)" in log


def test_no_change_targets_nothing(example_repo: Path) -> None:
    _commit(example_repo)
    urns, log = targets(example_repo)
    assert urns == [] and "0 group(s) changed" in log


def test_added_and_removed_leases_target_every_object_of_both(example_repo: Path, tmp_path: Path) -> None:
    _commit(example_repo)
    (example_repo / "leases" / "speech.yaml").write_text(
        "apiVersion: tms-stack/v1\nkind: Lease\nmetadata: {name: speech, owner: team-risk}\n"
        "spec:\n  models: [{name: asr, uri: 'model://s3-models/speech/asr'}]\n  expires: 2026-12-22T12:00:00Z\n"
        "  triton: {resources: {gpu: 1}}\n")
    (example_repo / "leases" / "ranker.yaml").unlink()  # pooled: its pool instance's ConfigMap changes too
    subprocess.run([TMS, "pool", "lock"], cwd=example_repo, check=True, capture_output=True)
    urns, _ = targets(example_repo)
    components = [u for u in urns if "$" not in u]
    assert f"{PREFIX}tms:index:Lease::speech" in components
    assert f"{PREFIX}tms:index:Lease::ranker" in components
    assert f"{PREFIX}tms:index:Lease$kubernetes:apps/v1:Deployment::speech:Deployment:speech" in urns
    assert f"{PREFIX}tms:index:Lease$kubernetes:core/v1:Service::ranker:Service:ranker" in urns
    assert any(u.startswith(f"{PREFIX}tms:index:Pool$kubernetes:core/v1:ConfigMap::cpu_inference_pool:") for u in urns)
    # every child's component is targeted too (a new group's children need their parent)
    for u in urns:
        if "$" in u:
            comp_type = u.split("::")[2].split("$")[0]
            group = u.rsplit("::", 1)[1].split(":")[0]
            assert f"{PREFIX}{comp_type}::{group}" in components, u
    # untouched leases are not targeted
    assert not [u for u in urns if "::fraud-detector" in u or "::chat-small" in u]


def test_a_base_that_fails_check_or_lacks_the_stack_means_the_whole_stack(example_repo: Path) -> None:
    fd = example_repo / "leases" / "fraud-detector.yaml"
    good = fd.read_text()
    fd.write_text(good.replace("cpu: 4,", "cpu: 40,"))
    _commit(example_repo)
    fd.write_text(good)
    urns, log = targets(example_repo)
    assert urns == [f"{PREFIX}**"] and "whole stack: the base main does not render" in log

    (example_repo / "Pulumi.other.yaml").write_text((example_repo / "Pulumi.example.yaml").read_text())
    urns, log = targets(example_repo, "--stack", "other")
    assert urns == ["urn:pulumi:other::tms-stack::**"] and "has no Pulumi.other.yaml" in log


def test_the_urns_are_those_the_program_registers(example_repo: Path) -> None:
    """Every URN of `tms_stack.commands.targets` equals the URN of the resource the program registers for it
    (Pulumi's mocks chain the parent's type and the name as the engine does, except that they
    keep the root Stack's type on its direct children, which the engine leaves out:
    sdk/go/common/resource/urn/urn.go, New; the e2e targeted-deploy test runs the real engine)."""
    from tms_stack.commands.render import render_fleet, render_root
    from tms_stack.commands.targets import _urns
    from tms_stack.deploy import program

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            return f"{args.name}-id", args.inputs

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            return {}, None

    pulumi.runtime.set_mocks(Mocks(), project="tms-stack", stack="example", preview=False)
    groups = render_root(example_repo, "example", NOW)
    seen: list[str] = []

    @pulumi.runtime.test
    def collect() -> Any:
        built = program.build(groups)
        urns = [g.urn for g in built.values()] + [c.urn for g in built.values() for c in g.objects.values()]
        return pulumi.Output.all(*urns).apply(seen.extend)

    collect()
    expected = _urns(render_fleet(example_repo, "example", NOW), "tms-stack", lambda key: "example")
    real = {u.replace("::pulumi:pulumi:Stack$", "::", 1) for u in seen}
    assert seen and real == {u for e in expected.values() for u in e[:2]}
