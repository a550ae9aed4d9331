"""The plan's admin section (issue 21): every changed path at any depth, caches and environments
included; where the stack's state and secrets live shown as a diff of values, inert in markdown;
the owner table counting pooled shares; and the head judged against the base it is compared with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import NOW, copy_example
from tests.security.test_plan_comment import html, outside_code
from tms_stack.commands.plan import build_plan, render_markdown

GENERATED = {
    ".venv/pyvenv.cfg": "home = /usr\n",
    ".venv/lib/python3.11/site-packages/evil.pth": "import os\n",
    "venv/bin/activate": "x\n",
    "tms_stack/__pycache__/check.cpython-311.pyc": "\x00",
    "tms_stack/rules/budgets.cpython-311-x86_64-linux-gnu.so": "\x7fELF",
    "node_modules/left-pad/index.js": "x\n",
    "out/triton/Deployment-x.yaml": "kind: Deployment\n",
    "a/b/c/d/e/f/g/deep.txt": "deep\n",
}


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    return copy_example(tmp_path / "base"), copy_example(tmp_path / "pr")


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_every_changed_path_is_listed_at_any_depth_and_generated_ones_refused(two: tuple[Path, Path]) -> None:
    base, pr = two
    _write(pr, GENERATED)
    plan = build_plan(pr, "main", now=NOW, base_dir=base)
    assert set(GENERATED) <= {path for path, kind in plan.admin.files if kind == "added"}
    refused = {e["rule"] for e in plan.errors}
    assert refused == {"files.generated"}, plan.errors
    where = sorted(re.sub(r"`", "", str(e["where"])).rsplit(":", 1)[0] for e in plan.errors)
    assert where == [".venv", "node_modules", "tms_stack/__pycache__",
                     "tms_stack/rules/budgets.cpython-311-x86_64-linux-gnu.so", "venv"]
    md = render_markdown(plan)
    assert "`tms_stack/__pycache__/check.cpython-311.pyc` (added)" in md
    assert "`a/b/c/d/e/f/g/deep.txt` (added)" in md and "`out/triton/Deployment-x.yaml` (added)" in md


def test_the_base_checkouts_own_bytecode_is_not_listed(two: tuple[Path, Path]) -> None:
    """Running the base's code may leave `__pycache__` in the base checkout; it is not the PR's."""
    base, pr = two
    _write(base, {"tms_stack/__pycache__/check.cpython-311.pyc": "\x00", "tms_stack/check.py": "x = 1\n"})
    _write(pr, {"tms_stack/check.py": "x = 1\n"})
    plan = build_plan(pr, "main", now=NOW, base_dir=base)
    assert plan.admin.files == [] and plan.errors == []


EVIL = "`x` @org/admins <!-- | ![i](https://e/x)"


def test_stack_backend_and_secrets_settings_are_a_diff_of_values(two: tuple[Path, Path]) -> None:
    base, pr = two
    stack = pr / "Pulumi.example.yaml"
    stack.write_text(stack.read_text() + "secretsprovider: awskms://alias/attacker?region=us-east-1\n"
                     "encryptionsalt: v1:AAAA:BBBB\nenvironment: [prod-secrets, 'evil-env']\n"
                     f"backend: {{url: 's3://attacker-state {EVIL}'}}\n")
    project = pr / "Pulumi.yaml"
    project.write_text(project.read_text().replace("main: tms_stack/", "main: payload/")
                       + "backend:\n  url: s3://attacker-bucket\n")
    plan = build_plan(pr, "main", now=NOW, base_dir=base)
    assert plan.admin.backend == [
        "Pulumi.example.yaml environment + prod-secrets",
        "Pulumi.example.yaml environment + evil-env",
        "Pulumi.example.yaml secretsprovider: (unset) → awskms://alias/attacker?region=us-east-1",
        "Pulumi.example.yaml encryptionsalt: (unset) → v1:AAAA:BBBB",
        f"Pulumi.example.yaml backend.url: (unset) → s3://attacker-state {EVIL}",
        "Pulumi.yaml backend.url: (unset) → s3://attacker-bucket",
        "Pulumi.yaml main: tms_stack/ → payload/",
    ]
    md = render_markdown(plan)
    assert md.index("Where the stack's state and secrets live") < md.index("tms check")
    rendered = html(md)
    assert "@org/admins" not in outside_code(rendered)
    assert "<img" not in rendered and rendered.count("<!--") == 1
    assert "<code>Pulumi.example.yaml secretsprovider: (unset) → awskms://alias/attacker?region=us-east-1</code>" \
        in rendered


def test_a_changed_secrets_provider_is_old_to_new(two: tuple[Path, Path]) -> None:
    base, pr = two
    (base / "Pulumi.example.yaml").write_text((base / "Pulumi.example.yaml").read_text()
                                              + "secretsprovider: passphrase\n")
    (pr / "Pulumi.example.yaml").write_text((pr / "Pulumi.example.yaml").read_text()
                                            + "secretsprovider: gcpkms://projects/x/keys/y\n")
    plan = build_plan(pr, "main", now=NOW, base_dir=base)
    assert plan.admin.backend == ["Pulumi.example.yaml secretsprovider: passphrase → gcpkms://projects/x/keys/y"]


def test_owner_table_counts_pooled_shares(two: tuple[Path, Path]) -> None:
    base, pr = two
    (pr / "leases" / "chat-small.yaml").write_text(
        (pr / "leases" / "chat-small.yaml").read_text().replace("quota: 2}", "quota: 3}"))
    from tms_stack.commands.check import load_base
    from tms_stack.logic.pool_lock import compute
    from tms_stack.repo.loader import load_repository
    from tms_stack.repo.lockfile import read_lock, write_lock

    write_lock(pr, compute(load_repository(pr), read_lock(base)).lock)
    assert load_base(pr, base, "main").changed  # the PR differs
    plan = build_plan(pr, "main", now=NOW, base_dir=base)
    assert plan.errors == []
    rows = {r["owner"]: r for r in plan.owners}
    assert (rows["team-assist"]["gpus_before"], rows["team-assist"]["gpus_after"]) == ("0.88", "1")
    md = render_markdown(plan)
    assert "| `team-assist` | 0.88 → 1 | 8 |" in md
    assert "| `chat-small` | `team-assist` | `chat_small` | `pool shared-t4-pool (quota 3)` | 0.38 |" in md


def test_plan_judges_the_head_against_its_base(two: tuple[Path, Path]) -> None:
    """A hand-written lock passes plain `tms check` but not the plan's check, which knows the base."""
    base, pr = two
    lock = pr / "pools" / "placement.lock.yaml"
    lock.write_text(lock.read_text().replace("backends: [python]", "backends: [python, tensorrt]"))
    plan = build_plan(pr, "main", now=NOW, base_dir=base)
    assert [e["rule"] for e in plan.errors] == ["lock.derived"]
    assert "tms pool lock --base main" in plan.errors[0]["message"]
