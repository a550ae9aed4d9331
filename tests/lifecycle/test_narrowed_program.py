"""A targeted `pulumi up` registers only the targeted groups (tms_stack/render/urns.py, tms_stack/deploy/program.py).

Leaving a group out is safe only when none of its URNs is targeted (the engine deletes what is
targeted and not registered), so every command line the reader does not fully understand must
mean "register everything". The real engine's side (untouched leases carried over unchanged, a
whole-stack preview afterwards wants nothing) is tests/e2e/test_pulumi_engine.py; the time it
saves is bench/RESULTS.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import NOW
from tms_stack.deploy import program
from tms_stack.render.urns import GroupRef, cli_targets, group_of, groups_to_register

STACK, PROJECT = "example", "tms-stack"
P = f"urn:pulumi:{STACK}::{PROJECT}::"
LEASE = f"{P}tms:index:Lease::image-classifier"
CHILD = f"{P}tms:index:Lease$kubernetes:core/v1:ConfigMap::image-classifier:ConfigMap:image-classifier"
POOL_CHILD = f"{P}tms:index:Pool$kubernetes:apps/v1:Deployment::shared-t4-pool:Deployment:shared-t4-pool-0"


def test_every_urn_the_program_makes_reads_back_as_its_group(example_repo: Path) -> None:
    from tms_stack.commands.render import render_fleet
    from tms_stack.commands.targets import _urns

    urns = _urns(render_fleet(example_repo, STACK, NOW), PROJECT, lambda _group: STACK)
    assert len(urns) > 30
    for component, child, _digest, group, _stack in urns.values():
        assert group_of(component, STACK, PROJECT) == group_of(child, STACK, PROJECT)
        ref = group_of(child, STACK, PROJECT)
        assert ref is not None and ref.key == group, (child, group)


@pytest.mark.parametrize("urn", [
    f"{P}**",                                                      # tms plan's whole-stack answer
    f"{P}tms:index:Lease::*",
    f"urn:pulumi:other::{PROJECT}::tms:index:Lease::image-classifier",   # another stack
    f"urn:pulumi:{STACK}::other::tms:index:Lease::image-classifier",     # another project
    f"{P}pulumi:pulumi:Stack::tms-stack-example",
    f"{P}pulumi:providers:kubernetes::default_4_32_0",
    f"{P}tms:index:Unknown::x",
    f"{P}tms:index:Lease$kubernetes:core/v1:ConfigMap::nogroup",             # child without `<group>:`
    f"{P}tms:index:Lease$tms:index:Lease$kubernetes:core/v1:ConfigMap::a:ConfigMap:a",
    f"{P}tms:index:Lease$random:index:Thing::a:Thing:a",
    "image-classifier",
    "",
])
def test_anything_but_a_group_urn_of_this_stack_is_no_group(urn: str) -> None:
    assert group_of(urn, STACK, PROJECT) is None


@pytest.mark.parametrize("argv, expected", [
    (["pulumi", "up", "--yes", f"--target={LEASE}", f"--target={CHILD}"], {"Lease/image-classifier"}),
    (["pulumi", "up", "--target", LEASE, "-t", POOL_CHILD], {"Lease/image-classifier", "Pool/shared-t4-pool"}),
    (["/opt/bin/pulumi", "preview", f"-t{LEASE}"], {"Lease/image-classifier"}),
    (["pulumi", "--cwd", "/repo", "up", "--stack", "example", "--parallel", "8", "--target", LEASE],
     {"Lease/image-classifier"}),
    (["pulumi", "up", "-C", "/repo", "-s", "example", f"--target-replace={CHILD}"], {"Lease/image-classifier"}),
    (["pulumi", "update", "--skip-preview", "--non-interactive", f"--target={LEASE}"], {"Lease/image-classifier"}),
])
def test_a_targeted_up_or_preview_narrows_to_the_targeted_groups(argv: list[str], expected: set[str]) -> None:
    assert groups_to_register(argv, STACK, PROJECT) == expected


@pytest.mark.parametrize("argv", [
    ["pulumi", "up", "--yes"],                                            # no target: the whole stack
    ["pulumi", "preview"],
    ["pulumi", "up", f"--target={LEASE}", "--target-dependents"],         # widens the targets
    ["pulumi", "up", f"--target={LEASE}", f"--exclude={CHILD}"],
    ["pulumi", "up", f"--target={LEASE}", f"--target={P}**"],             # a glob
    ["pulumi", "up", f"--target={LEASE}", f"--target={P}pulumi:pulumi:Stack::tms-stack-example"],
    ["pulumi", "refresh", f"--target={LEASE}"],                           # not a command that narrows
    ["pulumi", "refresh", "--run-program", f"--target={LEASE}"],
    ["pulumi", "destroy", f"--target={LEASE}"],
    ["pulumi", "up", "--target"],                                         # a flag without its value
    ["pulumi", "up", "surprise", f"--target={LEASE}"],                    # a positional we do not know
    ["pulumi", "up", "--unknown-flag", "value", f"--target={LEASE}"],     # may take a value: unsure
    ["pulumi", "up", "--", f"--target={LEASE}"],
    ["pulumi"],
    [],
])
def test_anything_else_registers_everything(argv: list[str]) -> None:
    assert groups_to_register(argv, STACK, PROJECT) is None


def test_a_replaced_resource_s_group_is_registered_too() -> None:
    argv = ["pulumi", "up", f"--target={LEASE}", "--replace", POOL_CHILD]
    assert groups_to_register(argv, STACK, PROJECT) == {"Lease/image-classifier", "Pool/shared-t4-pool"}
    assert groups_to_register(["pulumi", "up", "--replace", POOL_CHILD], STACK, PROJECT) is None


_URNS = [LEASE, CHILD, POOL_CHILD, f"{P}tms:index:Lease::other", f"{P}**", f"{P}pulumi:pulumi:Stack::x",
         f"urn:pulumi:prod::{PROJECT}::tms:index:Lease::image-classifier"]
_TOKENS = st.one_of(
    st.sampled_from(["up", "preview", "update", "refresh", "destroy", "--yes", "--skip-preview", "-y", "--diff",
                     "--stack", "-s", "example", "--parallel", "8", "-C", "/repo", "--target", "-t",
                     "--target-replace", "--replace", "--exclude", "--target-dependents", "--json", "--",
                     "--refresh", "true", "--unknown"]),
    st.sampled_from(_URNS),
    st.builds(lambda f, u: f"{f}={u}", st.sampled_from(["--target", "--target-replace", "--replace", "--exclude"]),
              st.sampled_from(_URNS)),
    st.builds(lambda u: f"-t{u}", st.sampled_from(_URNS)),
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_TOKENS, max_size=10))
# found in CI: `--stack` takes `--exclude` as its value, then `-tURN` targets
@example(tokens=["up", "--stack", "--exclude", f"-t{LEASE}"])
@example(tokens=["up", "-s", "--", f"--target={LEASE}"])
def test_narrowing_never_leaves_out_a_group_the_command_names(tokens: list[str]) -> None:
    """Whatever the command line, a narrowed answer holds the group of every URN that appears in
    it anywhere (as a flag's value or on its own), comes only with a target flag and an up or
    preview, and never with a flag that widens the targets."""
    argv = ["pulumi", *tokens]
    keys = groups_to_register(argv, STACK, PROJECT)
    if keys is None:
        return
    assert any(t.split("=")[0] in ("--target", "-t", "--target-replace") or
               (t.startswith("-t") and not t.startswith("--")) for t in tokens)
    assert {"up", "preview", "update"} & set(tokens)
    assert not {"--exclude", "--target-dependents", "--"} & {t.split("=")[0] for t in tokens}
    for token in tokens:
        for urn in (token, token.partition("=")[2], token[2:]):
            ref = group_of(urn, STACK, PROJECT)
            if ref is not None:
                assert ref.key in keys, (argv, urn, keys)


def test_cli_targets_keeps_every_form_in_order() -> None:
    assert cli_targets(["pulumi", "up", "--target", "a", "--target=b", "-t", "c", "-td"]) == ["a", "b", "c", "d"]


def test_a_group_ref_key_is_what_the_program_keys_groups_by() -> None:
    assert GroupRef("Pool", "shared-t4-pool").key == "Pool/shared-t4-pool"


# --- the program ------------------------------------------------------------------------------------


class _Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.names: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.names.append(args.name)
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def _run_program(repo: Path, argv: list[str] | None, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], dict]:
    """program.run under Pulumi's mocks, as if started by `pulumi <argv>`: the resources registered
    and the stack's exports."""
    from tms_stack.commands.render import render_root

    rec = _Recorder()
    pulumi.runtime.set_mocks(rec, project=PROJECT, stack=STACK, preview=False)
    monkeypatch.setattr(program, "engine_argv", lambda: argv)
    monkeypatch.setattr("tms_stack.commands.render.render_root",
                        lambda root, stack, now=None: render_root(root, stack, NOW))
    exports: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda k, v: exports.__setitem__(k, v))

    @pulumi.runtime.test
    def run() -> Any:
        built = program.run(repo, STACK)
        return pulumi.Output.all(*[c.urn for g in built.values() for c in g.objects.values()])

    run()
    return rec.names, exports


def test_the_program_under_targets_registers_their_groups_and_exports_the_whole_fleet(
        example_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    everything, full_exports = _run_program(example_repo, ["pulumi", "up"], monkeypatch)
    names, exports = _run_program(example_repo, ["pulumi", "up", f"--target={LEASE}", f"--target={CHILD}"],
                                  monkeypatch)
    assert "fraud-detector" in everything and len(everything) > 40
    assert sorted(names) == sorted(n for n in everything if n == "image-classifier" or n.startswith("image-classifier:"))
    assert exports == full_exports and "fraud-detector" in exports["leases"]


def test_register_all_switch_and_an_unknown_engine_register_everything(
        example_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    everything, _ = _run_program(example_repo, None, monkeypatch)
    monkeypatch.setenv(program.REGISTER_ALL_ENV, "1")
    names, _ = _run_program(example_repo, ["pulumi", "up", f"--target={LEASE}"], monkeypatch)
    assert sorted(names) == sorted(everything)


def test_engine_argv_finds_the_pulumi_process_above_the_program(tmp_path: Path) -> None:
    """The CLI starts the language host, which starts the program: two levels up here too (bash
    named `pulumi`, then a plain bash, then Python; `; true` keeps each shell from exec'ing)."""
    probe = "from tms_stack.deploy.program import engine_argv; print(engine_argv())"
    inner = f"{sys.executable} -c '{probe}'; true"
    out = subprocess.run(["pulumi", "-c", f'bash -c "{inner}"; true', "up", f"--target={LEASE}"],
                         executable="/bin/bash", capture_output=True, text=True, check=True, cwd=Path.cwd()).stdout
    assert out.strip() == repr(["pulumi", "-c", f'bash -c "{inner}"; true', "up", f"--target={LEASE}"])
    alone = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert alone.strip() == "None"
