"""A partial resources block in policies/limits.yaml keeps TMS's defaults for what it leaves out
(docs/user-guide.md: "TMS's defaults for everything left out"). Issue 14: `default: {cpu: 2, gpu: 1}`
was refused with `systemMemory: required field is missing`."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import NOW, copy_example
from tms_stack.commands.check import run_check
from tms_stack.logic.resolve import effective_resources

FULL_DEFAULT = "default: {cpu: 2, gpu: 1, systemMemory: 4Gi, sharedMemory: 256Mi, repositorySize: 2Gi}"
FULL_MAXIMUM = "maximum: {cpu: 16, gpu: 4, systemMemory: 64Gi, sharedMemory: 2Gi, repositorySize: 100Gi}"


def _limits(repo: Path, old: str, new: str) -> None:
    path = repo / "policies" / "limits.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_partial_default_and_maximum_blocks_keep_tms_defaults(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    _limits(repo, FULL_DEFAULT, "default: {cpu: 3, gpu: 1}")
    _limits(repo, FULL_MAXIMUM, "maximum: {cpu: 16, gpu: 4, systemMemory: 64Gi}")
    result = run_check(repo, NOW)
    assert result.exit_code == 0, [d.message for d in result.all()]
    resources = result.repo.limits.spec.triton.resources
    chosen = effective_resources(None, resources.default)
    # cpu from the admin; the rest TMS's defaults (4Gi, 256Mi, 2Gi), the maximum's left-outs TMS's too.
    assert (chosen.cpu, chosen.memory("system_memory"), chosen.memory("shared_memory")) == ("3", "4Gi", "256Mi")
    assert str(resources.maximum.sharedMemory) == "2Gi" and str(resources.maximum.systemMemory) == "64Gi"


def test_a_bad_value_in_a_partial_block_is_still_reported_at_its_line(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    _limits(repo, FULL_DEFAULT, "default: {cpu: 2, sharedMemory: lots}")
    result = run_check(repo, NOW)
    (error,) = [d for d in result.all() if d.rule == "limits.schema"]
    assert error.line == 10 and "sharedMemory" in error.message and "not a memory size" in error.message


def test_errors_in_several_policy_files_come_in_one_run(tmp_path: Path) -> None:
    """Issue 14: policy errors appeared one per run. A broken allowlist, a bad Limits value and a bad
    Repositories value: all three in one `tms check`."""
    repo = copy_example(tmp_path / "repo")
    allow = repo / "policies" / "allowlist.yaml"
    allow.write_text(allow.read_text().replace("images:", "images: ["))
    _limits(repo, FULL_MAXIMUM, FULL_MAXIMUM.replace("gpu: 4", "gpu: four"))
    repos = repo / "policies" / "repositories.yaml"
    repos.write_text(repos.read_text().replace("bucketName: models", "bucketName: M"))
    result = run_check(repo, NOW)
    found = {(d.file, d.rule) for d in result.all()}
    assert {("policies/allowlist.yaml", "yaml"), ("policies/limits.yaml", "limits.schema"),
            ("policies/repositories.yaml", "repositories.schema")} <= found
